//! Compiles the GPU kernels (src/model/gpu/kernels) for the CPU emulation,
//! so that every kernel runs, and is tested, on machines without a GPU; and
//! embeds their fatbin for GPUs where one was compiled ahead.

fn main() {
    let dir = "src/model/gpu/kernels";
    for file in ["shim.h", "anisonet.cu", "emulate.cpp"] {
        println!("cargo:rerun-if-changed={dir}/{file}");
    }
    println!("cargo:rerun-if-env-changed=ANISOSTUDY_EMULATION_SANITIZER");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(format!("{dir}/emulate.cpp"))
        .include(dir)
        .flag_if_supported("-pthread");
    // -fsanitize=thread or address for the emulation's sanitizer runs (docs/gpus.md).
    if let Ok(sanitizer) = std::env::var("ANISOSTUDY_EMULATION_SANITIZER") {
        build.flag(format!("-fsanitize={sanitizer}")).flag("-fno-omit-frame-pointer");
        // The sanitizer's runtime (the C++ compiler's), for every binary that runs the emulation.
        let runtime = match sanitizer.as_str() {
            "thread" => "tsan",
            "address" => "asan",
            other => panic!("ANISOSTUDY_EMULATION_SANITIZER={other}: use thread or address"),
        };
        println!("cargo:rustc-link-lib=dylib={runtime}");
    }
    build.compile("anisonet_emulation");
    // The kernels compiled ahead for GPUs (scripts/cuda-build.sh sets this),
    // embedded so that GPU nodes without NVRTC run them too.
    println!("cargo:rustc-check-cfg=cfg(aniso_fatbin)");
    println!("cargo:rerun-if-env-changed=ANISOSTUDY_KERNELS_FATBIN");
    if let Some(fatbin) = std::env::var_os("ANISOSTUDY_KERNELS_FATBIN") {
        println!("cargo:rerun-if-changed={}", std::path::Path::new(&fatbin).display());
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        std::fs::copy(&fatbin, out.join("anisonet.fatbin"))
            .unwrap_or_else(|e| panic!("ANISOSTUDY_KERNELS_FATBIN={}: {e}", fatbin.to_string_lossy()));
        println!("cargo:rustc-cfg=aniso_fatbin");
    }
}
