//! The tensor-op network (the backend of non-CPU devices) against the fused
//! CPU network: outputs and parameter gradients agree, and it reproduces the
//! reference fixture. Run here on dfdx's CPU device; a CUDA build runs the
//! same code on the GPU. Its parity with the reference fixture is in
//! `model_reference.rs`. `ANISOSTUDY_TEST_DEVICE=cuda:N` runs them on a GPU
//! (see `support/test_device.rs`).

use anisostudy::e3::cartesian::{irreps_to_cartesian, Mat3};
use anisostudy::e3::rotation::{matmul, random_rotations, transpose};
use anisostudy::model::synthetic::random_batch;
use anisostudy::model::{AnisoNet, ModelConfig, ModelFloat, ModelInput, ModelKind, OutputMode, Precision};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

#[path = "support/test_device.rs"]
mod test_device;
use test_device::on_test_device;

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
        dtype: Precision::F64,
        ..Default::default()
    }
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

/// Output and gradient of Σ ⟨out, weights⟩ with respect to the parameters.
fn output_and_gradient<E: ModelFloat>(
    model: &AnisoNet<E>,
    input: &ModelInput,
    weights: &[f64],
) -> (Vec<f64>, Vec<f64>)
where
    Cpu: Device<E>,
{
    let params = model.params.flat.clone().traced(Gradients::leaky());
    let out = model.forward(input, params).unwrap();
    let values: Vec<f64> = out.retaped::<NoneTape>().as_vec().iter().map(|v| v.to64()).collect();
    let w = model
        .device
        .tensor_from_vec(weights.iter().map(|&v| E::of(v)).collect(), (values.len() / 6, Const::<6>));
    let grads = (out * w).sum::<(), _>().backward();
    (values, grads.get(&model.params.flat).as_vec().iter().map(|v| v.to64()).collect())
}

fn check_agreement(config: &ModelConfig, seed: u64) -> (f64, f64) {
    let fused = AnisoNet::<f64>::new(config, &Cpu::default(), seed).unwrap();
    let mut tensor = AnisoNet::<f64>::new(config, &Cpu::default(), seed).unwrap();
    on_test_device(&mut tensor);
    assert_ne!(tensor.compute_device(), "cpu");
    let input = random_batch(seed, 3, 5, 7, 5.0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let weights: Vec<f64> = (0..input.num_graphs * 6).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let (out_f, grad_f) = output_and_gradient(&fused, &input, &weights);
    let (out_t, grad_t) = output_and_gradient(&tensor, &input, &weights);
    let (e_out, e_grad) = (rel(&out_t, &out_f), rel(&grad_t, &grad_f));
    assert!(e_out < 1e-11, "{config:?}: outputs differ by {e_out:e}");
    assert!(e_grad < 1e-10, "{config:?}: gradients differ by {e_grad:e}");
    assert!(grad_f.iter().any(|g| *g != 0.0));
    assert_eq!(tensor.predict(&input).unwrap().concat(), out_t);
    (e_out, e_grad)
}

#[test]
fn tensor_network_matches_fused_network_in_value_and_gradient() {
    for lmax in 1..=3 {
        let (e_out, e_grad) = check_agreement(&small(ModelKind::Equivariant, lmax), lmax as u64);
        println!("equivariant l_max {lmax}: outputs {e_out:.1e}, gradients {e_grad:.1e}");
    }
    check_agreement(&small(ModelKind::Scalar, 2), 11);
    check_agreement(
        &ModelConfig {
            layers: 1,
            output: OutputMode::Physical,
            eps_offset: 3.0,
            ..small(ModelKind::Equivariant, 2)
        },
        12,
    );
    check_agreement(&ModelConfig { layers: 3, ..small(ModelKind::Scalar, 0) }, 13);
}

#[test]
fn tensor_network_handles_isolated_atoms() {
    let config = small(ModelKind::Equivariant, 2);
    let fused = AnisoNet::<f64>::new(&config, &Cpu::default(), 3).unwrap();
    let mut tensor = AnisoNet::<f64>::new(&config, &Cpu::default(), 3).unwrap();
    on_test_device(&mut tensor);
    let mut input = random_batch(4, 2, 3, 4, 5.0);
    (input.edge_src, input.edge_dst, input.edge_vec) = (vec![], vec![], vec![]);
    let (want, got) = (fused.predict(&input).unwrap(), tensor.predict(&input).unwrap());
    assert!(rel(&got.concat(), &want.concat()) < 1e-12);
}

#[test]
fn tensor_network_is_equivariant_in_f32() {
    let config = ModelConfig { dtype: Precision::F32, ..small(ModelKind::Equivariant, 3) };
    let mut model = AnisoNet::<f32>::new(&config, &Cpu::default(), 5).unwrap();
    on_test_device(&mut model);
    let input = random_batch(6, 2, 5, 8, 5.0);
    let base = model.predict(&input).unwrap();
    for r in random_rotations(8, 3) {
        for r in [r, r.map(|row| row.map(|v| -v))] {
            let mut moved = input.clone();
            moved.edge_vec = input.edge_vec.iter().map(|v| anisostudy::e3::rotation::apply(&r, *v)).collect();
            let got = model.predict(&moved).unwrap();
            for (g, b) in got.iter().zip(&base) {
                let e: Mat3 = irreps_to_cartesian(b);
                let want =
                    anisostudy::e3::cartesian::cartesian_to_irreps(&matmul(&matmul(&r, &e), &transpose(&r)));
                let err = rel(g, &want);
                assert!(err < 1e-4, "rotation error {err:e}");
            }
        }
    }
}
