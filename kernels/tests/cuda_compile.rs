//! Compiles every kernel file with NVRTC for sm_80 and sm_90 (and sm_90a for Hopper-only files)
//! -- no GPU needed. Any compile error, register spill or ptxas warning fails the test, with
//! NVRTC's log printed. Skips with a notice when libnvrtc cannot be loaded, unless
//! REQUIRE_NVRTC=1 (as `.ci/run` sets after installing NVRTC from PyPI).

use kernels::cuda::driver::{compile, nvrtc_present, nvrtc_version};
use kernels::cuda::sources::{Source, SOURCES};

fn nvrtc_or_skip() -> bool {
    if nvrtc_present() {
        return true;
    }
    if std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!(
            "REQUIRE_NVRTC=1 but libnvrtc.so.13 cannot be loaded (LD_LIBRARY_PATH={:?})",
            std::env::var("LD_LIBRARY_PATH")
        );
    }
    eprintln!("skipped: libnvrtc not found (install nvidia-cuda-nvrtc==13.0.* and set LD_LIBRARY_PATH)");
    false
}

/// ptxas' lines for each kernel: "Compiling entry function 'x' ... Used N registers, ...".
fn register_report(log: &str) -> Vec<String> {
    log.lines().filter(|l| l.contains("Used") && l.contains("registers")).map(|l| l.trim().to_string()).collect()
}

#[test]
fn every_kernel_file_compiles_without_spills() {
    if !nvrtc_or_skip() {
        return;
    }
    let (maj, min) = nvrtc_version().unwrap();
    eprintln!("NVRTC {maj}.{min}; {} kernel files", SOURCES.len());
    let mut failures = Vec::new();
    for src in SOURCES {
        let archs: &[&str] = if src.sm90a { &["sm_90a"] } else { &["sm_80", "sm_90"] };
        for arch in archs {
            match compile(src, arch) {
                Ok(c) => {
                    assert!(!c.cubin.is_empty(), "{}.cu {arch}: empty CUBIN", src.name);
                    let regs = register_report(&c.log);
                    eprintln!("{}.cu {arch}: {} kernels", src.name, regs.len());
                    for r in regs {
                        eprintln!("    {r}");
                    }
                    // warn-on-spills + warning-as-error turn spills into errors; this catches a
                    // report that slipped through anyway.
                    for line in c.log.lines().filter(|l| l.contains("spill")) {
                        if !line.contains("0 bytes spill stores, 0 bytes spill loads") {
                            failures.push(format!("{}.cu {arch}: {line}", src.name));
                        }
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "kernel compile failures:\n{}", failures.join("\n\n"));
}

#[test]
fn a_compile_error_names_the_file_and_line() {
    if !nvrtc_or_skip() {
        return;
    }
    static BROKEN: Source = Source {
        name: "broken_on_purpose",
        code: "extern \"C\" __global__ void k(float* x) {\n x[0] = y;\n}\n",
        sm90a: false,
    };
    let e = compile(&BROKEN, "sm_80").err().expect("an undefined name must not compile");
    assert!(e.0.contains("broken_on_purpose.cu"), "error should name the file: {e}");
    assert!(e.0.contains("(2)"), "error should name line 2: {e}");
}

#[test]
fn a_clean_kernel_gives_a_cubin_and_a_register_report() {
    if !nvrtc_or_skip() {
        return;
    }
    static SCALE: Source = Source {
        name: "scale_for_test",
        code: "extern \"C\" __global__ void scale_f32(float* x, float a, int n) {\n int i = blockIdx.x * blockDim.x + threadIdx.x;\n if (i < n) x[i] = to_f32(from_f32<float>(x[i] * a));\n}\n",
        sm90a: false,
    };
    let c = compile(&SCALE, "sm_90").unwrap();
    assert!(c.cubin.len() > 100);
    assert_eq!(register_report(&c.log).len(), 1, "log: {}", c.log);
}
