//! The emulated FCTP kernels against the fused CPU network's
//! `fctp_species_matrices` and `fctp_forward`.

use std::mem::{offset_of, size_of};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::gpu::emulated::c_layout;
use crate::model::kernels::{fctp_forward, fctp_species_matrices, Real};
use crate::model::{Architecture, ModelConfig, ModelKind};

#[test]
fn parameter_structs_have_the_c_layout() {
    assert_eq!(
        c_layout("FctpParams"),
        [
            size_of::<FctpParams>(),
            offset_of!(FctpParams, x),
            offset_of!(FctpParams, out),
            offset_of!(FctpParams, weight),
            offset_of!(FctpParams, z),
            offset_of!(FctpParams, mats),
            offset_of!(FctpParams, species_of),
            offset_of!(FctpParams, paths),
            offset_of!(FctpParams, norm),
            offset_of!(FctpParams, out_paths_ptr),
            offset_of!(FctpParams, out_paths),
            offset_of!(FctpParams, elems),
            offset_of!(FctpParams, scale),
            offset_of!(FctpParams, add),
            offset_of!(FctpParams, add_alpha),
            offset_of!(FctpParams, nodes),
            offset_of!(FctpParams, din),
            offset_of!(FctpParams, dout),
            offset_of!(FctpParams, species),
            offset_of!(FctpParams, attr),
            offset_of!(FctpParams, mats_len),
            offset_of!(FctpParams, paths_count),
            offset_of!(FctpParams, unused),
        ]
    );
    assert_eq!(
        c_layout("FctpPath"),
        [
            size_of::<FctpPath>(),
            offset_of!(FctpPath, x_off),
            offset_of!(FctpPath, nu),
            offset_of!(FctpPath, out_off),
            offset_of!(FctpPath, nw),
            offset_of!(FctpPath, d),
            offset_of!(FctpPath, w_off),
            offset_of!(FctpPath, mats_off),
            offset_of!(FctpPath, unused),
        ]
    );
}

fn random<E: Real>(rng: &mut ChaCha8Rng, len: usize) -> Vec<E> {
    (0..len).map(|_| E::of(rng.gen_range(-1.0..1.0))).collect()
}

fn worst<E: Real>(a: &[E], b: &[E]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x.to64() - y.to64()).abs() / (1.0 + y.to64().abs())).fold(0.0, f64::max)
}

/// Every FCTP of the network (sc, lin1, lin2 of each convolution), on
/// `nodes` nodes of `species` species, with and without the lin2 combine.
fn parity<E: GpuReal>(tolerance: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let gpu = Gpu::emulated();
    for (lmax, kind) in [(0, ModelKind::Scalar), (1, ModelKind::Equivariant), (3, ModelKind::Equivariant)] {
        let config = ModelConfig { kind, lmax, em_dim: 5, mul: 3, layers: 1, ..ModelConfig::default() };
        for conv in Architecture::new(&config).unwrap().convs {
            for f in [&conv.sc, &conv.lin1, &conv.lin2] {
                for (nodes, species) in [(1, 1), (11, 3)] {
                    let species_of: Vec<usize> = (0..nodes).map(|n| (n * 7 + 1) % species).collect();
                    let (din, dout) = (f.irreps_in.dim(), f.irreps_out.dim());
                    let w: Vec<E> = random(&mut rng, f.weight_numel);
                    let z: Vec<E> = random(&mut rng, species * f.attr_dim);
                    let x: Vec<E> = random(&mut rng, nodes * din);
                    let scale: Vec<E> = random(&mut rng, dout);
                    let add: Vec<E> = random(&mut rng, nodes * dout);
                    let alpha = 0.375;
                    let mats = fctp_species_matrices(f, &w, &z, species);
                    let mut plain = vec![E::zero(); nodes * dout];
                    fctp_forward(f, &mats, &x, &species_of, &mut plain);
                    let combined: Vec<E> = plain
                        .iter()
                        .enumerate()
                        .map(|(k, &o)| E::of(alpha) * add[k] + scale[k % dout] * o)
                        .collect();

                    let mut tables = FctpTables::<E>::new(&gpu, f).unwrap();
                    tables.set_species(&gpu, species).unwrap();
                    let dw = gpu.upload(&w).unwrap();
                    let dz = gpu.upload(&z).unwrap();
                    let dx = gpu.upload(&x).unwrap();
                    let dspecies =
                        gpu.upload(&species_of.iter().map(|&s| s as i32).collect::<Vec<_>>()).unwrap();
                    let dscale = gpu.upload(&scale).unwrap();
                    let dadd = gpu.upload(&add).unwrap();
                    let dmats = gpu.alloc::<E>(tables.mats_len(species)).unwrap();
                    let out = gpu.alloc::<E>(nodes * dout).unwrap();
                    tables.matrices(&gpu, dw.slice(), dz.slice(), species, dmats.slice()).unwrap();
                    let flat: Vec<E> = mats.concat();
                    let got = gpu.download(&dmats).unwrap();
                    assert!(worst(&got, &flat) <= tolerance, "matrices: {}", worst(&got, &flat));
                    let run = |scale: Option<Slice<E>>, add: Option<(Slice<E>, f64)>| {
                        tables
                            .forward(
                                &gpu,
                                dx.slice(),
                                dmats.slice(),
                                dspecies.slice(),
                                species,
                                scale,
                                add,
                                out.slice(),
                            )
                            .unwrap();
                        gpu.download(&out).unwrap()
                    };
                    let e = worst(&run(None, None), &plain);
                    assert!(e <= tolerance, "lmax {lmax} {kind:?} forward: {e}");
                    let e = worst(&run(Some(dscale.slice()), Some((dadd.slice(), alpha))), &combined);
                    assert!(e <= tolerance, "lmax {lmax} {kind:?} combined: {e}");
                }
            }
        }
    }
}

#[test]
fn the_emulated_fctp_matches_the_cpu_network_in_f64() {
    parity::<f64>(1e-12);
}

#[test]
fn the_emulated_fctp_matches_the_cpu_network_in_f32() {
    parity::<f32>(1e-5);
}
