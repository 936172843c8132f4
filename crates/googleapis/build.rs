//! Compile Google's `.proto` files into one `FileDescriptorSet` and embed it.
//!
//! The files come from the npm registry (`google-proto-files`, Google's own package of the
//! googleapis tree, pinned with its integrity hash in `protos/package-lock.json`), installed
//! by `npm ci` when missing. `protox`, a protobuf compiler in Rust, reads the services below
//! with everything they import (google.protobuf's own files come with protox), so no
//! `protoc` is needed. Cargo reruns this only when the lock file changes.

use protox::file::{ChainFileResolver, GoogleFileResolver, IncludeFileResolver};
use runpool_buildkit::{Building, npm_ci};
use std::path::PathBuf;

/// The services' files, and `google.rpc`'s error details (the `Any`s a `google.rpc.Status`
/// carries in `grpc-status-details-bin`).
const FILES: &[&str] = &[
    "google/cloud/run/v2/worker_pool.proto",
    "google/cloud/run/v2/revision.proto",
    "google/longrunning/operations.proto",
    "google/iam/admin/v1/iam.proto",
    "google/iam/credentials/v1/iamcredentials.proto",
    "google/iam/v2/policy.proto",
    "google/cloud/resourcemanager/v3/organizations.proto",
    "google/cloud/resourcemanager/v3/folders.proto",
    "google/cloud/resourcemanager/v3/projects.proto",
    "google/cloud/resourcemanager/v3/tag_keys.proto",
    "google/cloud/resourcemanager/v3/tag_values.proto",
    "google/cloud/resourcemanager/v3/tag_bindings.proto",
    "google/cloud/orgpolicy/v2/orgpolicy.proto",
    "google/cloud/recommender/v1/recommender_service.proto",
    "google/cloud/policytroubleshooter/iam/v3/troubleshooter.proto",
    "google/cloud/policytroubleshooter/v1/checker.proto",
    "google/api/serviceusage/v1/serviceusage.proto",
    "google/rpc/status.proto",
    "google/rpc/code.proto",
    "google/rpc/error_details.proto",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let protos = manifest.join("../../protos");
    npm_ci(
        &protos,
        "google-proto-files/package.json",
        Building {
            what: "gRPC gateway (Google's .proto files, from npm)",
            otherwise: "",
        },
    );
    let root = protos.join("node_modules/google-proto-files");
    // google.protobuf's files are protox's own: the package's copies use protobuf editions
    // syntax, which protox does not read, and describe the same messages.
    let mut files = ChainFileResolver::new();
    files.add(GoogleFileResolver::new());
    files.add(IncludeFileResolver::new(root.clone()));
    let mut compiler = protox::Compiler::with_file_resolver(files);
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(FILES).unwrap_or_else(|e| {
        panic!(
            "compiling Google's .proto files from {}: {e:?}",
            root.display()
        )
    });
    // Encoded by protox itself: prost's own types would drop the custom options, the
    // `google.api.http` rules among them.
    let set = compiler.encode_file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("googleapis.binpb");
    std::fs::write(&out, set).expect("write the descriptor set");
}
