//! Compiles the GPU kernels (src/model/gpu/kernels) for the CPU emulation,
//! so that every kernel runs, and is tested, on machines without a GPU.

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
    // -fsanitize=thread or address for the emulation's sanitizer runs (README).
    if let Ok(sanitizer) = std::env::var("ANISOSTUDY_EMULATION_SANITIZER") {
        build.flag(format!("-fsanitize={sanitizer}")).flag("-fno-omit-frame-pointer");
    }
    build.compile("anisonet_emulation");
}
