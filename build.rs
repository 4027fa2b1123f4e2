//! Generates the gRPC code from `proto/` with protox (pure Rust), so building
//! needs no system `protoc`.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protox hands the descriptors over directly, so tonic's own change
    // detection never sees the .proto files: ask cargo to watch them.
    println!("cargo:rerun-if-changed=proto");

    // `proto` also holds the vendored google/api/field_behavior.proto the
    // files import; protox ships google/protobuf/*.proto itself.
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files([
            "invites/v1/invite.proto",
            "invites/v1/events.proto",
            "invites/v1/invite_service.proto",
        ])?;
    // Reflection serves this set, so grpcurl needs no .proto files. Encoded by
    // protox itself: a prost `FileDescriptorSet` would drop the extension
    // options (the `google.api.field_behavior` annotations) on the way.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("invites_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // prost's codec, but a request that does not decode is INVALID_ARGUMENT.
        .codec_path("crate::grpc::codec::Codec")
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
