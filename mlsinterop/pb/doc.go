// Package pb holds the Go code generated from the IETF MLS interop
// framework's gRPC service definition (mls_client.proto, kept in
// ../shared/mls-test-vectors). Do not edit the generated files; regenerate
// them from the repository root with:
//
//	protoc -I ../shared/mls-test-vectors \
//	  --go_out=mlsinterop/pb --go_opt=paths=source_relative \
//	  --go_opt=Mmls_client.proto="github.com/switchboard-chat/switchboard/mlsinterop/pb;pb" \
//	  --go-grpc_out=mlsinterop/pb --go-grpc_opt=paths=source_relative \
//	  --go-grpc_opt=Mmls_client.proto="github.com/switchboard-chat/switchboard/mlsinterop/pb;pb" \
//	  ../shared/mls-test-vectors/mls_client.proto
//
// with protoc 3.21 (Debian's protobuf-compiler), protoc-gen-go v1.36.12 and
// protoc-gen-go-grpc v1.6.2 (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
// google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2).
package pb
