//! Throughput of the per-edge spherical harmonics (f32 and f64) and the cost of
//! building Wigner-3j symbols. Prints one JSON line per measurement.
//!
//! Run with `cargo bench --bench spherical_harmonics`.

use std::hint::black_box;
use std::time::Instant;

use anisostudy::e3::spherical_harmonics::{sh_dim, spherical_harmonics_batch_into};
use anisostudy::e3::wigner::wigner_3j;
use rand::{Rng, SeedableRng};

const VECTORS: usize = 1 << 20;

fn measure<T: anisostudy::e3::Real>(precision: &str, vectors: &[[T; 3]]) {
    for lmax in 1..=4u32 {
        let mut out = vec![T::ZERO; vectors.len() * sh_dim(lmax)];
        spherical_harmonics_batch_into(lmax, vectors, &mut out); // warm-up
        let start = Instant::now();
        spherical_harmonics_batch_into(lmax, black_box(vectors), &mut out);
        black_box(&out);
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"spherical_harmonics\",\"precision\":\"{precision}\",\"lmax\":{lmax},\"vectors\":{},\"seconds\":{seconds:.4},\"vectors_per_s\":{:.0}}}",
            vectors.len(),
            vectors.len() as f64 / seconds
        );
    }
}

fn main() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let vectors: Vec<[f64; 3]> = (0..VECTORS).map(|_| [0; 3].map(|_| rng.gen_range(-5.0..5.0))).collect();
    let vectors32: Vec<[f32; 3]> = vectors.iter().map(|v| v.map(|c| c as f32)).collect();
    measure("f64", &vectors);
    measure("f32", &vectors32);

    let start = Instant::now();
    let mut count = 0;
    for l1 in 0..=4u32 {
        for l2 in 0..=4u32 {
            for l3 in l1.abs_diff(l2)..=(l1 + l2).min(4) {
                black_box(wigner_3j(l1, l2, l3));
                count += 1;
            }
        }
    }
    println!(
        "{{\"bench\":\"wigner_3j_build\",\"lmax\":4,\"symbols\":{count},\"seconds\":{:.6}}}",
        start.elapsed().as_secs_f64()
    );
}
