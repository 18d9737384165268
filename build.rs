// Records the git commit for `kraal --version`, and lays out the functions a
// container's lifecycle runs next to each other (contrib/order/kraal.order, made by
// contrib/order/make-order.sh) so starting kraal maps fewer pages of its binary.
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=KRAAL_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");

    // lld (rustc's default linker on x86_64 Linux) reads the ordering file; names it
    // does not know (the code changed since the file was made) are skipped.
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/order/kraal.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=KRAAL_NO_ORDER");
    // make-order.sh asks for the link map: the function addresses of a stripped binary.
    println!("cargo:rerun-if-env-changed=KRAAL_LINK_MAP");
    if let Some(map) = std::env::var_os("KRAAL_LINK_MAP") {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-Map={}",
            map.to_string_lossy()
        );
    }
    let lld = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if lld && order.is_file() && std::env::var_os("KRAAL_NO_ORDER").is_none() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
