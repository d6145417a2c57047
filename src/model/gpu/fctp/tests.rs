//! The emulated FCTP kernels against the fused CPU network's
//! `fctp_species_matrices` and `fctp_forward`.

use std::mem::{offset_of, size_of};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::gpu::emulated::c_layout;
use crate::model::kernels::{fctp_backward, fctp_forward, fctp_species_matrices, Real};
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
            offset_of!(FctpParams, g),
            offset_of!(FctpParams, g_scale),
            offset_of!(FctpParams, in_paths_ptr),
            offset_of!(FctpParams, in_paths),
            offset_of!(FctpParams, in_elems),
            offset_of!(FctpParams, species_ptr),
            offset_of!(FctpParams, species_nodes),
            offset_of!(FctpParams, grads),
            offset_of!(FctpParams, dweight),
            offset_of!(FctpParams, dz),
            offset_of!(FctpParams, dz_parts),
            offset_of!(FctpParams, g_alpha),
            offset_of!(FctpParams, accumulate),
            offset_of!(FctpParams, weight_numel),
            offset_of!(FctpParams, nodes),
            offset_of!(FctpParams, din),
            offset_of!(FctpParams, dout),
            offset_of!(FctpParams, species),
            offset_of!(FctpParams, attr),
            offset_of!(FctpParams, mats_len),
            offset_of!(FctpParams, paths_count),
            offset_of!(FctpParams, rows),
            offset_of!(FctpParams, rows_per_part),
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
            offset_of!(FctpPath, row_off),
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

                    let tables = FctpTables::<E>::new(&gpu, f).unwrap();
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
                        let args = FctpForward {
                            x: dx.slice(),
                            mats: dmats.slice(),
                            species_of: dspecies.slice(),
                            species,
                            scale,
                            add,
                            out: out.slice(),
                        };
                        tables.forward(&gpu, args).unwrap();
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

/// The backward pass of every FCTP of the network against `fctp_backward`,
/// with the upstream gradient scaled by one factor and per element, dx and
/// dz accumulated onto nonzero values; a species with no node included; dz
/// in one part and in several.
fn backward_parity<E: GpuReal>(tolerance: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let gpu = Gpu::emulated();
    let mut parts_seen = Vec::new();
    for (lmax, kind, mul) in
        [(0, ModelKind::Scalar, 3), (2, ModelKind::Equivariant, 3), (2, ModelKind::Equivariant, 16)]
    {
        let config = ModelConfig { kind, lmax, em_dim: 5, mul, layers: 1, ..ModelConfig::default() };
        for conv in Architecture::new(&config).unwrap().convs {
            for f in [&conv.sc, &conv.lin1, &conv.lin2] {
                let (nodes, species) = (13, 4);
                // Species 3 has no node.
                let species_of: Vec<usize> = (0..nodes).map(|n| (n * 5 + 2) % 3).collect();
                let nodes_of_species: Vec<Vec<usize>> =
                    (0..species).map(|s| (0..nodes).filter(|&n| species_of[n] == s).collect()).collect();
                let (din, dout) = (f.irreps_in.dim(), f.irreps_out.dim());
                let w: Vec<E> = random(&mut rng, f.weight_numel);
                let z: Vec<E> = random(&mut rng, species * f.attr_dim);
                let x: Vec<E> = random(&mut rng, nodes * din);
                let g: Vec<E> = random(&mut rng, nodes * dout);
                let scale: Vec<E> = random(&mut rng, dout);
                let dx0: Vec<E> = random(&mut rng, nodes * din);
                let dz0: Vec<E> = random(&mut rng, species * f.attr_dim);
                let mats = fctp_species_matrices(f, &w, &z, species);

                let tables = FctpTables::<E>::new(&gpu, f).unwrap();
                parts_seen.push(tables.dz_parts());
                let up = |v: &[E]| gpu.upload(v).unwrap();
                let ints =
                    |v: Vec<usize>| gpu.upload(&v.into_iter().map(|i| i as i32).collect::<Vec<_>>()).unwrap();
                let (dw_, dz_, dx_, dg, dscale) = (up(&w), up(&z), up(&x), up(&g), up(&scale));
                let dspecies = ints(species_of.clone());
                let mut ptr = vec![0usize];
                for list in &nodes_of_species {
                    ptr.push(ptr.last().unwrap() + list.len());
                }
                let dptr = ints(ptr);
                let dlist = ints(nodes_of_species.concat());
                let dmats = up(&mats.concat());
                let work = gpu.alloc::<E>(tables.scratch_len(species)).unwrap();
                let grad_w = gpu.alloc::<E>(f.weight_numel).unwrap();
                let species_nodes =
                    SpeciesNodes { species_of: dspecies.slice(), ptr: dptr.slice(), nodes: dlist.slice() };
                for upstream in [Upstream::Alpha(0.625), Upstream::Scale(dscale.slice())] {
                    let gt: Vec<E> = match upstream {
                        Upstream::Alpha(a) => g.iter().map(|&v| E::of(a) * v).collect(),
                        Upstream::Scale(_) => {
                            g.iter().enumerate().map(|(k, &v)| v * scale[k % dout]).collect()
                        }
                    };
                    let (mut dx, mut dw, mut dz) =
                        (dx0.clone(), vec![E::zero(); f.weight_numel], dz0.clone());
                    fctp_backward(
                        f,
                        &w,
                        &z,
                        &mats,
                        &x,
                        &species_of,
                        &nodes_of_species,
                        &gt,
                        Some(&mut dx),
                        &mut dw,
                        &mut dz,
                    );
                    let (gdx, gdz) = (up(&dx0), up(&dz0));
                    let args = FctpBackward {
                        x: dx_.slice(),
                        g: dg.slice(),
                        upstream,
                        mats: dmats.slice(),
                        nodes: species_nodes,
                        weight: dw_.slice(),
                        z: dz_.slice(),
                        dx: Some((gdx.slice(), Accumulate::Add)),
                        scratch: work.slice(),
                        dweight: grad_w.slice(),
                        dz: (gdz.slice(), Accumulate::Add),
                    };
                    tables.backward(&gpu, args).unwrap();
                    for (what, got, want) in [
                        ("dx", gpu.download(&gdx).unwrap(), dx),
                        ("dw", gpu.download(&grad_w).unwrap(), dw),
                        ("dz", gpu.download(&gdz).unwrap(), dz),
                    ] {
                        let e = worst(&got, &want);
                        assert!(e <= tolerance, "lmax {lmax} {kind:?} mul {mul} {what}: {e}");
                    }
                }
            }
        }
    }
    assert!(parts_seen.contains(&1) && parts_seen.iter().any(|&p| p > 2), "{parts_seen:?}");
}

#[test]
fn the_emulated_fctp_backward_matches_the_cpu_network_in_f64() {
    backward_parity::<f64>(1e-12);
}

#[test]
fn the_emulated_fctp_backward_matches_the_cpu_network_in_f32() {
    backward_parity::<f32>(1e-5);
}

/// dz, from the species gradient the kernels wrote, is bit for bit the sum
/// the module documents: per part of DZ_ROWS_PER_PART rows, each row's fma
/// chain over w times norm added row by row, then the parts added in order
/// onto what was there.
#[test]
fn the_attributes_gradient_adds_its_parts_in_a_fixed_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let gpu = Gpu::emulated();
    let config = ModelConfig { lmax: 2, em_dim: 3, mul: 20, layers: 1, ..ModelConfig::default() };
    let arch = Architecture::new(&config).unwrap();
    let f = &arch.convs[1].lin2;
    let tables = FctpTables::<f64>::new(&gpu, f).unwrap();
    assert!(tables.dz_parts() > 2, "{} parts", tables.dz_parts());
    let (nodes, species, attr) = (9, 3, f.attr_dim);
    let species_of: Vec<i32> = (0..nodes).map(|n| (n % species) as i32).collect();
    let mut ptr = vec![0i32];
    let mut list = Vec::new();
    for s in 0..species as i32 {
        list.extend((0..nodes as i32).filter(|&n| species_of[n as usize] == s));
        ptr.push(list.len() as i32);
    }
    let w: Vec<f64> = random(&mut rng, f.weight_numel);
    let z: Vec<f64> = random(&mut rng, species * attr);
    let x: Vec<f64> = random(&mut rng, nodes * f.irreps_in.dim());
    let g: Vec<f64> = random(&mut rng, nodes * f.irreps_out.dim());
    let dz0: Vec<f64> = random(&mut rng, species * attr);
    let (dw, dzv, dx, dg, ddz) = (
        gpu.upload(&w).unwrap(),
        gpu.upload(&z).unwrap(),
        gpu.upload(&x).unwrap(),
        gpu.upload(&g).unwrap(),
        gpu.upload(&dz0).unwrap(),
    );
    let (dspecies, dptr, dlist) =
        (gpu.upload(&species_of).unwrap(), gpu.upload(&ptr).unwrap(), gpu.upload(&list).unwrap());
    let mats = gpu.alloc::<f64>(tables.mats_len(species)).unwrap();
    tables.matrices(&gpu, dw.slice(), dzv.slice(), species, mats.slice()).unwrap();
    let scratch = gpu.alloc::<f64>(tables.scratch_len(species)).unwrap();
    let grad_w = gpu.alloc::<f64>(f.weight_numel).unwrap();
    let args = FctpBackward {
        x: dx.slice(),
        g: dg.slice(),
        upstream: Upstream::Alpha(1.0),
        mats: mats.slice(),
        nodes: SpeciesNodes { species_of: dspecies.slice(), ptr: dptr.slice(), nodes: dlist.slice() },
        weight: dw.slice(),
        z: dzv.slice(),
        dx: None,
        scratch: scratch.slice(),
        dweight: grad_w.slice(),
        dz: (ddz.slice(), Accumulate::Add),
    };
    tables.backward(&gpu, args).unwrap();
    let species_grad = &gpu.download(&scratch).unwrap()[..tables.mats_len(species)];
    let rows: Vec<(usize, usize)> = f
        .paths
        .iter()
        .enumerate()
        .flat_map(|(q, p)| (0..f.irreps_in.0[p.block_in].mul).map(move |u| (q, u)))
        .collect();
    let mut offsets = Vec::new();
    let mut off = 0;
    for p in &f.paths {
        offsets.push(off);
        off += f.irreps_in.0[p.block_in].mul * f.irreps_out.0[p.block_out].mul;
    }
    let mut want = dz0.clone();
    for s in 0..species {
        for v in 0..attr {
            let parts = rows.chunks(DZ_ROWS_PER_PART).map(|part| {
                part.iter().fold(0.0, |d: f64, &(q, u)| {
                    let p = &f.paths[q];
                    let (nu, nw) = (f.irreps_in.0[p.block_in].mul, f.irreps_out.0[p.block_out].mul);
                    let gs = &species_grad[offsets[q] * species + s * nu * nw + u * nw..][..nw];
                    let wu = &w[p.weight_offset + u * attr * nw + v * nw..][..nw];
                    let chain = gs.iter().zip(wu).fold(0.0, |acc: f64, (a, b)| a.mul_add(*b, acc));
                    d + p.norm * chain
                })
            });
            want[s * attr + v] += parts.fold(0.0, |d, part| d + part);
        }
    }
    let got = gpu.download(&ddz).unwrap();
    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{got:?}\n{want:?}");
}
