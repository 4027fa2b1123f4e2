//! Generates the gRPC code from `proto/` with protox (pure Rust), so building
//! needs no system `protoc`.

use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protox hands the descriptors over directly, so tonic's own change
    // detection never sees the .proto files: ask cargo to watch them.
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(
        [
            "invites/v1/invite.proto",
            "invites/v1/events.proto",
            "invites/v1/invite_service.proto",
        ],
        ["proto"],
    )?;
    // Reflection serves this set, so grpcurl needs no .proto files.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("invites_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // prost's codec, but a request that does not decode is INVALID_ARGUMENT.
        .codec_path("crate::grpc::codec::Codec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
