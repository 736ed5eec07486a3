#!/bin/sh
# Regenerates ingest.pb.go. Run from anywhere; needs on PATH (or in <repo>/bin) the generators the
# checked-in code was made with (the same as store/storepb):
#   protoc          libprotoc 3.21.12 (Debian bookworm: apt-get install protobuf-compiler)
#   protoc-gen-go   v1.36.12 (GOBIN=$PWD/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)
# No gRPC stubs: package receive registers the service by hand, with its own codec.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
PATH="$root/bin:$PATH"
protoc -I . --go_out=. --go_opt=module=github.com/weir-metrics/weir receive/ingestpb/ingest.proto
