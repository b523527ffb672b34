// Package pluginpb holds the protobuf wire protocol between the finderbot
// daemon and its plugins, and the code generated from it. Only package sdk
// uses it; plugin authors and the daemon work with sdk's Go types.
package pluginpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
