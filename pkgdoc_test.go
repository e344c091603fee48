package smartkit_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module has exactly one
// package comment, that it sits in doc.go (main.go for commands; a
// one-file package may keep it in that file), and that it starts the way
// godoc expects.
func TestPackageDocs(t *testing.T) {
	dirs := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 3 {
		t.Fatalf("found only %d package directories", len(dirs))
	}
	for dir := range dirs {
		fset := token.NewFileSet()
		entries, _ := os.ReadDir(dir)
		var withDoc []string
		var name string
		files := 0
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			name = f.Name.Name
			files++
			if f.Doc != nil {
				withDoc = append(withDoc, e.Name())
				text := f.Doc.Text()
				if name == "main" && !strings.HasPrefix(text, "Command ") ||
					name != "main" && !strings.HasPrefix(text, "Package "+name+" ") {
					t.Errorf("%s/%s: package comment starts %q", dir, e.Name(), strings.SplitN(text, "\n", 2)[0])
				}
			}
		}
		want := "doc.go"
		if name == "main" {
			want = "main.go"
		}
		if len(withDoc) != 1 || withDoc[0] != want && files > 1 {
			t.Errorf("%s: package comments in %v, want exactly one, in %s", dir, withDoc, want)
		}
	}
}
