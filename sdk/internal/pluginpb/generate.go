// Package pluginpb holds the protobuf wire protocol between the finderbot
// daemon and its plugins, and the code generated from it. Only package sdk
// uses it; plugin authors and the daemon work with sdk's Go types.
//
// The generated files are committed, so building needs no protoc. To
// regenerate after changing plugin.proto:
//
//	apt-get install -y protobuf-compiler
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.1
//	cd sdk && go generate ./...
package pluginpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
