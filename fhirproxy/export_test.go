package fhirproxy

import "net/http/httputil"

// CopyBuffers lets the benchmarks give a bare ReverseProxy the pool of copy
// buffers the Proxy uses.
var CopyBuffers httputil.BufferPool = &copyBuffers
