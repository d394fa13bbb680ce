//! Writes the C header `include/peersync.h` from the crate's `extern "C"` items (cbindgen).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("agent/cbindgen.toml is readable");
    let header = cbindgen::generate_with_config(&dir, config).expect("cbindgen can read the agent's source");
    // Written only when it changed, so a build does not touch a committed, current header.
    header.write_to_file(format!("{dir}/include/peersync.h"));
}
