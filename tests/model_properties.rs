//! Symmetry and gradient properties of AnisoNet: rotation/inversion
//! equivariance, translation invariance, isotropy of a cubic crystal, the
//! typed lmax = 0 error, finite-difference gradients, and a dfdx training step.

use anisostudy::e3::cartesian::{cartesian_to_irreps, irreps_to_cartesian, Mat3};
use anisostudy::e3::rotation::{apply, matmul, random_rotations, transpose};
use anisostudy::model::synthetic::random_batch;
use anisostudy::model::{AnisoNet, ModelConfig, ModelError, ModelFloat, ModelInput, ModelKind, OutputMode};
use anisostudy::train::optim::AdamW;
use dfdx::prelude::*;

fn small(kind: ModelKind, lmax: usize) -> ModelConfig {
    ModelConfig {
        kind,
        em_dim: 6,
        layers: 2,
        lmax,
        mul: 4,
        num_basis: 6,
        radial_neurons: 12,
        num_neighbors: 8.0,
        ..Default::default()
    }
}

fn rotate(input: &ModelInput, r: &Mat3) -> ModelInput {
    ModelInput { edge_vec: input.edge_vec.iter().map(|&v| apply(r, v)).collect(), ..input.clone() }
}

/// ‖a − b‖ / ‖b‖ over all structures.
fn rel(a: &[[f64; 6]], b: &[[f64; 6]]) -> f64 {
    let num: f64 = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().flatten().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn rotate_eps(r: &Mat3, irreps: &[f64; 6]) -> [f64; 6] {
    let e = irreps_to_cartesian(irreps);
    cartesian_to_irreps(&matmul(&matmul(r, &e), &transpose(r)))
}

fn check_equivariance(output: OutputMode) {
    let config = ModelConfig { output, ..small(ModelKind::Equivariant, 3) };
    let model = AnisoNet::<f32>::new(&config, &Cpu::default(), 7).unwrap();
    let input = random_batch(1, 3, 5, 8, 5.0);
    let base = model.predict(&input).unwrap();
    for r in random_rotations(11, 4) {
        let got = model.predict(&rotate(&input, &r)).unwrap();
        let want: Vec<[f64; 6]> = base.iter().map(|e| rotate_eps(&r, e)).collect();
        let e = rel(&got, &want);
        assert!(e < 1e-4, "rotation: relative error {e:e}");
        // Rotation combined with inversion: ε is a true tensor (even parity).
        let inv =
            [[-r[0][0], -r[0][1], -r[0][2]], [-r[1][0], -r[1][1], -r[1][2]], [-r[2][0], -r[2][1], -r[2][2]]];
        let got = model.predict(&rotate(&input, &inv)).unwrap();
        let e = rel(&got, &want);
        assert!(e < 1e-4, "improper rotation: relative error {e:e}");
    }
}

#[test]
fn equivariant_model_rotates_its_output() {
    check_equivariance(OutputMode::Raw);
}

#[test]
fn every_searched_shape_builds_and_lmax4_is_equivariant() {
    for lmax in 0..=4 {
        for layers in 1..=4 {
            for kind in [ModelKind::Equivariant, ModelKind::Scalar] {
                let c = ModelConfig { layers, ..small(kind, lmax) };
                let built = anisostudy::model::Architecture::new(&c);
                assert_eq!(built.is_err(), kind == ModelKind::Equivariant && lmax == 0);
            }
        }
    }
    let config = ModelConfig { layers: 3, mul: 2, ..small(ModelKind::Equivariant, 4) };
    let model = AnisoNet::<f64>::new(&config, &Cpu::default(), 1).unwrap();
    let input = random_batch(9, 2, 4, 6, 5.0);
    let base = model.predict(&input).unwrap();
    // Three layers reach odd scalars (0o, tanh-activated): inversion checks their parity.
    assert!(model.arch().gates[2].irreps_out.to_string().starts_with("2x0o+2x0e"));
    let r = random_rotations(5, 1)[0];
    let want: Vec<[f64; 6]> = base.iter().map(|e| rotate_eps(&r, e)).collect();
    assert!(rel(&model.predict(&rotate(&input, &r)).unwrap(), &want) < 1e-10);
    let inv = r.map(|row| row.map(|v| -v));
    assert!(rel(&model.predict(&rotate(&input, &inv)).unwrap(), &want) < 1e-10);
}

#[test]
fn physical_output_is_equivariant_and_physical() {
    check_equivariance(OutputMode::Physical);
    let config = ModelConfig { output: OutputMode::Physical, ..small(ModelKind::Equivariant, 2) };
    let model = AnisoNet::<f64>::new(&config, &Cpu::default(), 3).unwrap();
    let out = model.predict(&random_batch(5, 6, 4, 6, 5.0)).unwrap();
    assert_eq!(anisostudy::model::count_unphysical(&out), 0);
}

#[test]
fn scalar_model_runs_and_is_not_equivariant() {
    let model = AnisoNet::<f64>::new(&small(ModelKind::Scalar, 2), &Cpu::default(), 7).unwrap();
    let input = random_batch(2, 2, 5, 8, 5.0);
    let base = model.predict(&input).unwrap();
    assert!(base.iter().flatten().all(|v| v.is_finite()));
    let r = random_rotations(3, 1)[0];
    let got = model.predict(&rotate(&input, &r)).unwrap();
    let want: Vec<[f64; 6]> = base.iter().map(|e| rotate_eps(&r, e)).collect();
    assert!(rel(&got, &want) > 1e-3);
}

#[test]
fn translation_changes_nothing() {
    // Edges depend on relative vectors only: a translated crystal has identical edges.
    // What must hold as well: the order of edges and of atoms in a batch does not matter.
    let model = AnisoNet::<f64>::new(&small(ModelKind::Equivariant, 2), &Cpu::default(), 9).unwrap();
    let input = random_batch(4, 2, 4, 6, 5.0);
    let base = model.predict(&input).unwrap();
    let mut shuffled = input.clone();
    shuffled.edge_src.reverse();
    shuffled.edge_dst.reverse();
    shuffled.edge_vec.reverse();
    let got = model.predict(&shuffled).unwrap();
    assert!(rel(&got, &base) < 1e-12);
}

/// Brute-force periodic neighbour list (self-edge included), r_dst − r_src + shift.
fn neighbours(
    lattice: &Mat3,
    frac: &[[f64; 3]],
    cutoff: f64,
    shift: [f64; 3],
) -> (Vec<u32>, Vec<u32>, Vec<[f64; 3]>) {
    let cart = |f: [f64; 3]| -> [f64; 3] {
        std::array::from_fn(|k| (0..3).map(|i| f[i] * lattice[i][k]).sum::<f64>() + shift[k])
    };
    let (mut src, mut dst, mut vec) = (vec![], vec![], vec![]);
    for (i, fi) in frac.iter().enumerate() {
        for (j, fj) in frac.iter().enumerate() {
            for a in -3i32..=3 {
                for b in -3i32..=3 {
                    for c in -3i32..=3 {
                        let fj_img = [fj[0] + a as f64, fj[1] + b as f64, fj[2] + c as f64];
                        let (ri, rj) = (cart(*fi), cart(fj_img));
                        let v = [rj[0] - ri[0], rj[1] - ri[1], rj[2] - ri[2]];
                        let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                        if r < cutoff {
                            src.push(i as u32);
                            dst.push(j as u32);
                            vec.push(v);
                        }
                    }
                }
            }
        }
    }
    (src, dst, vec)
}

fn cscl(shift: [f64; 3]) -> ModelInput {
    let a = 4.12;
    let lattice = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
    let (edge_src, edge_dst, edge_vec) = neighbours(&lattice, &[[0.0; 3], [0.5; 3]], 5.0, shift);
    ModelInput {
        numbers: vec![55, 17],
        masses: vec![132.90545196, 35.45],
        node_graph: vec![0, 0],
        num_graphs: 1,
        edge_src,
        edge_dst,
        edge_vec,
    }
}

#[test]
fn cubic_crystal_gives_isotropic_tensor_and_translation_invariance() {
    let model = AnisoNet::<f64>::new(&small(ModelKind::Equivariant, 3), &Cpu::default(), 5).unwrap();
    let out = model.predict(&cscl([0.0; 3])).unwrap()[0];
    let aniso = out[1..].iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(out[0].abs() > 1e-6);
    assert!(aniso < 1e-9 * out[0].abs(), "2e part {aniso:e} of a cubic crystal");
    let moved = model.predict(&cscl([0.3, -1.2, 2.5])).unwrap()[0];
    assert!(rel(&[moved], &[out]) < 1e-10);
}

#[test]
fn precision_is_chosen_by_the_config() {
    use anisostudy::model::{AnyAnisoNet, Precision};
    let input = random_batch(3, 2, 4, 6, 5.0);
    let c64 = ModelConfig { dtype: Precision::F64, ..small(ModelKind::Equivariant, 2) };
    let c32 = ModelConfig { dtype: Precision::F32, ..c64.clone() };
    let m64 = AnyAnisoNet::new(&c64, &Cpu::default(), 2).unwrap();
    let m32 = AnyAnisoNet::new(&c32, &Cpu::default(), 2).unwrap();
    assert!(matches!((&m64, &m32), (AnyAnisoNet::F64(_), AnyAnisoNet::F32(_))));
    let (a, b) = (m64.predict(&input).unwrap(), m32.predict(&input).unwrap());
    assert!(rel(&b, &a) < 1e-4, "f32 vs f64: {:e}", rel(&b, &a));
}

#[test]
fn equivariant_lmax0_is_a_typed_error() {
    let err = AnisoNet::<f32>::new(&small(ModelKind::Equivariant, 0), &Cpu::default(), 1).err();
    assert_eq!(err, Some(ModelError::EquivariantNeedsLmax1));
    assert!(AnisoNet::<f32>::new(&small(ModelKind::Scalar, 0), &Cpu::default(), 1).is_ok());
}

/// Directional finite differences of ⟨c, output⟩ for parameters of every tensor.
fn check_gradients(config: ModelConfig) {
    let mut model = AnisoNet::<f64>::new(&config, &Cpu::default(), 21).unwrap();
    // Moderate weights keep activations out of saturation, so the check is sharp.
    let flat: Vec<f64> = model.params.flat.as_vec().iter().map(|v| 0.5 * v).collect();
    model.params.flat.copy_from(&flat);
    let input = random_batch(8, 2, 4, 6, 5.0);
    let coef: Vec<[f64; 6]> =
        (0..2).map(|g| std::array::from_fn(|k| ((g * 6 + k) as f64 * 0.37).sin())).collect();
    let net = &model.net;
    let loss = |p: &[f64]| -> f64 {
        let (out, _) = net.forward(p, net.prepare(&input).unwrap());
        out.iter().flatten().zip(coef.iter().flatten()).map(|(a, b)| a * b).sum()
    };
    let (_, cache) = net.forward(&flat, net.prepare(&input).unwrap());
    let grad = net.backward(&flat, &cache, &coef);
    for entry in &net.arch.params {
        let numel = entry.numel();
        // A few indices per tensor; for the embedding, columns of the elements present.
        let picks: Vec<usize> = if entry.name == "em.weight" {
            let z = input.numbers[0] as usize - 1;
            (0..3).map(|v| v * 118 + z).collect()
        } else {
            (0..4).map(|k| (k * 7919 + 13) % numel).collect()
        };
        for i in picks {
            let idx = entry.offset + i;
            let h = 1e-4 * flat[idx].abs().max(1.0);
            let mut p = flat.clone();
            p[idx] += h;
            let fp = loss(&p);
            p[idx] -= 2.0 * h;
            let fm = loss(&p);
            let numeric = (fp - fm) / (2.0 * h);
            let scale = numeric.abs().max(grad[idx].abs()).max(1e-4);
            assert!(
                (numeric - grad[idx]).abs() / scale < 1e-5,
                "{}[{i}]: numeric {numeric:e} analytic {:e}",
                entry.name,
                grad[idx]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_equivariant() {
    check_gradients(small(ModelKind::Equivariant, 2));
}

#[test]
fn gradients_match_finite_differences_scalar_physical() {
    check_gradients(ModelConfig { output: OutputMode::Physical, ..small(ModelKind::Scalar, 1) });
}

#[test]
fn gradients_match_finite_differences_with_offset_physical() {
    // The offset shifts the input of the physical map, so its backward must see it.
    check_gradients(ModelConfig {
        output: OutputMode::Physical,
        eps_offset: 3.5,
        ..small(ModelKind::Equivariant, 2)
    });
}

/// `eps_offset` adds s·I to every prediction of both models and leaves the
/// output equivariant; the parameters' gradient of the raw output is unchanged.
#[test]
fn eps_offset_adds_an_isotropic_tensor() {
    let input = random_batch(4, 3, 5, 8, 5.0);
    for kind in [ModelKind::Equivariant, ModelKind::Scalar] {
        let base = AnisoNet::<f64>::new(&small(kind, 2), &Cpu::default(), 5).unwrap();
        let shifted =
            AnisoNet::<f64>::new(&ModelConfig { eps_offset: 4.25, ..small(kind, 2) }, &Cpu::default(), 5)
                .unwrap();
        let (a, b) = (base.predict(&input).unwrap(), shifted.predict(&input).unwrap());
        for (a, b) in a.iter().zip(&b) {
            let (ta, tb) = (irreps_to_cartesian(a), irreps_to_cartesian(b));
            for i in 0..3 {
                for j in 0..3 {
                    let want = ta[i][j] + if i == j { 4.25 } else { 0.0 };
                    assert!((tb[i][j] - want).abs() < 1e-12, "{kind:?} ε[{i}][{j}] {} vs {want}", tb[i][j]);
                }
            }
        }
        let coef = vec![[0.3, -0.2, 0.1, 0.5, -0.4, 0.2]; 3];
        let flat = base.params.flat.as_vec();
        let (_, c0) = base.net.forward(&flat, base.net.prepare(&input).unwrap());
        let (_, c1) = shifted.net.forward(&flat, shifted.net.prepare(&input).unwrap());
        assert_eq!(base.net.backward(&flat, &c0, &coef), shifted.net.backward(&flat, &c1, &coef));
    }
    let config = ModelConfig { eps_offset: 4.25, ..small(ModelKind::Equivariant, 2) };
    let model = AnisoNet::<f64>::new(&config, &Cpu::default(), 5).unwrap();
    let base = model.predict(&input).unwrap();
    for r in random_rotations(3, 2) {
        let want: Vec<[f64; 6]> = base.iter().map(|e| rotate_eps(&r, e)).collect();
        assert!(rel(&model.predict(&rotate(&input, &r)).unwrap(), &want) < 1e-10);
    }
}

fn training_reduces_loss<E: ModelFloat>()
where
    Cpu: Device<E>,
    rand_distr::StandardNormal: rand_distr::Distribution<E>,
{
    let dev = Cpu::default();
    let mut model = AnisoNet::<E>::new(&small(ModelKind::Equivariant, 2), &dev, 4).unwrap();
    let input = random_batch(6, 4, 4, 6, 5.0);
    let target: Tensor<(usize, Const<6>), E, Cpu> =
        dev.tensor_from_vec((0..24).map(|k| E::of(1.0 + 0.1 * (k % 6) as f64)).collect(), (4, Const::<6>));
    let mut opt = AdamW::<E>::new(3e-3, 0.03);
    let mut losses = vec![];
    for _ in 0..30 {
        let grads = Gradients::leaky();
        let pred = model.forward(&input, model.params.flat.clone().traced(grads)).unwrap();
        let loss = mse_loss(pred, target.clone());
        losses.push(loss.array().to64());
        let grads = loss.backward();
        opt.update(&mut model.params, &grads);
    }
    assert!(losses.last().unwrap() < &(0.5 * losses[0]), "{losses:?}");
}

#[test]
fn dfdx_training_step_reduces_loss() {
    training_reduces_loss::<f32>();
    training_reduces_loss::<f64>();
}

#[test]
fn dfdx_tape_gradient_equals_hand_written_backward() {
    let dev = Cpu::default();
    let model = AnisoNet::<f64>::new(&small(ModelKind::Equivariant, 2), &dev, 12).unwrap();
    let input = random_batch(13, 3, 4, 6, 5.0);
    let target: Tensor<(usize, Const<6>), f64, Cpu> =
        dev.tensor_from_vec((0..18).map(|k| (k as f64 * 0.3).cos()).collect(), (3, Const::<6>));
    let pred = model.forward(&input, model.params.flat.clone().traced(Gradients::leaky())).unwrap();
    let grads = mse_loss(pred, target.clone()).backward();
    let tape_grad = grads.get(&model.params.flat).as_vec();
    // mse over 18 numbers: d/dpred = 2 (pred − target) / 18.
    let flat = model.params.flat.as_vec();
    let (out, cache) = model.net.forward(&flat, model.net.prepare(&input).unwrap());
    let t = target.as_vec();
    let g: Vec<[f64; 6]> =
        (0..3).map(|s| std::array::from_fn(|k| 2.0 * (out[s][k] - t[s * 6 + k]) / 18.0)).collect();
    let direct = model.net.backward(&flat, &cache, &g);
    let diff = tape_grad.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let scale = direct.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(diff <= 1e-12 * scale, "{diff:e} vs {scale:e}");
}

/// The f32 backward (with its SIMD kernels) equals the f64 one, checked by
/// finite differences, to single precision, for every parameter tensor: a
/// precision-specific bug would slow f32 training while f64 tests pass.
#[test]
fn f32_gradient_equals_f64_gradient() {
    let config = ModelConfig {
        em_dim: 16,
        mul: 16,
        num_basis: 8,
        radial_neurons: 24,
        ..small(ModelKind::Equivariant, 2)
    };
    let m64 = AnisoNet::<f64>::new(&config, &Cpu::default(), 3).unwrap();
    let m32 = AnisoNet::<f32>::new(&config, &Cpu::default(), 3).unwrap();
    let p64: Vec<f64> = m64.params.flat.as_vec().iter().map(|v| 0.5 * v).collect();
    let p32: Vec<f32> = p64.iter().map(|&v| v as f32).collect();
    let p64: Vec<f64> = p32.iter().map(|&v| v as f64).collect();
    let input = random_batch(5, 3, 6, 10, 5.0);
    let coef64: Vec<[f64; 6]> =
        (0..3).map(|g| std::array::from_fn(|k| ((g * 6 + k) as f64 * 0.37).sin())).collect();
    let coef32: Vec<[f32; 6]> = coef64.iter().map(|c| c.map(|v| v as f32)).collect();
    let (_, c64) = m64.net.forward(&p64, m64.net.prepare(&input).unwrap());
    let g64 = m64.net.backward(&p64, &c64, &coef64);
    let (_, c32) = m32.net.forward(&p32, m32.net.prepare(&input).unwrap());
    let g32 = m32.net.backward(&p32, &c32, &coef32);
    for entry in &m64.net.arch.params {
        let range = entry.offset..entry.offset + entry.numel();
        let num: f64 = range.clone().map(|i| (g32[i] as f64 - g64[i]).powi(2)).sum();
        let den: f64 = range.map(|i| g64[i].powi(2)).sum();
        let e = (num / den.max(1e-30)).sqrt();
        assert!(e < 1e-3, "{}: f32 vs f64 gradient relative error {e:e}", entry.name);
    }
}
