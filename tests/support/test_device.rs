//! Where a test runs the tensor-op network: dfdx's CPU device, or the GPU
//! that `ANISOSTUDY_TEST_DEVICE=cuda:N` names in a `cuda` build, so the same
//! parity and equivariance tests check a GPU:
//!
//!   ANISOSTUDY_TEST_DEVICE=cuda:0 target/cuda/release/deps/model_reference-…

use anisostudy::model::{AnisoNet, ComputeDevice, ModelFloat};
use dfdx::prelude::*;

/// Moves `model`'s network to the test device.
pub fn on_test_device<E: ModelFloat>(model: &mut AnisoNet<E>)
where
    Cpu: Device<E>,
{
    match std::env::var("ANISOSTUDY_TEST_DEVICE").ok().filter(|d| !d.is_empty() && d != "cpu") {
        Some(device) => {
            let device: ComputeDevice = device.parse().expect("ANISOSTUDY_TEST_DEVICE: cpu or cuda:N");
            model.use_device(device).expect("the test device opens");
        }
        None => model.compute_on(Cpu::default(), "cpu-tensor"),
    }
}
