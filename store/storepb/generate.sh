#!/bin/sh
# Regenerates the Go code of the StoreAPI protos in this directory. Run from anywhere; needs on PATH
# (or in <repo>/bin) the generators the checked-in code was made with:
#   protoc               libprotoc 3.21.12 (Debian bookworm: apt-get install protobuf-compiler)
#   protoc-gen-go        v1.36.12 (GOBIN=$PWD/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)
#   protoc-gen-go-grpc   v1.6.2   (GOBIN=$PWD/bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
PATH="$root/bin:$PATH"
protoc -I . \
	--go_out=. --go_opt=module=github.com/weir-metrics/weir \
	--go-grpc_out=. --go-grpc_opt=module=github.com/weir-metrics/weir \
	store/storepb/types.proto store/storepb/rpc.proto store/storepb/info.proto store/storepb/metadata.proto
