package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart/sqlstore"
)

// Open an embedded SQLite store (a "postgres://…" DSN opens PostgreSQL,
// for several nodes), migrate it, and hand its typed views to the
// packages: here launches, which it consumes exactly once, in one
// conditional statement, however many nodes race to redeem them.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "smartkit")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "file:"+filepath.Join(dir, "smartkit.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	launches := &launch.Service{Store: st.Launches()}
	l, err := launches.Mint(ctx, launch.Request{ClientID: "growth-chart", UserID: "dr-lee",
		FHIRBase: "https://ehr.example.org/fhir", Context: launch.Context{Patient: "123"}})
	if err != nil {
		log.Fatal(err)
	}
	bind := launch.Binding{ID: l.ID, ClientID: "growth-chart", FHIRBase: "https://ehr.example.org/fhir"}
	got, err := launches.Redeem(ctx, bind)
	fmt.Println(got.Context.Patient, err)
	_, err = launches.Redeem(ctx, bind)
	fmt.Println(err)
	// Output:
	// 123 <nil>
	// launch: invalid launch
}
