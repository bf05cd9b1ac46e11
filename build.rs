//! Compiles the kubelet's device plugin API (`proto/deviceplugin/v1beta1/api.proto`) into the
//! gRPC client and server code of `src/deviceplugin/api.rs`.
//!
//! The `.proto` is parsed by protox, a protobuf compiler written in Rust, rather than by
//! `protoc`: the build then needs nothing beyond crates.io, on a fresh Debian machine as on any
//! other, and no `protobuf-compiler` package (whose version would differ between hosts).

use std::error::Error;

const PROTO: &str = "proto/deviceplugin/v1beta1/api.proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    tonic_build::configure()
        // Clients dial unix sockets through their own connector; no TCP helpers.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
