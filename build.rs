//! Tells the `simdnet` program whether it was built without optimisation, so that a debug build
//! (about 100 times slower) can say so on its first line.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(simdnet_unoptimized)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("OPT_LEVEL").is_ok_and(|level| level == "0") {
        println!("cargo::rustc-cfg=simdnet_unoptimized");
    }
}
