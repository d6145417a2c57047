//! Parity with the Python reference (e3nn 0.6.0 AnisoNet): architecture,
//! every hidden layer output and the final outputs of the tiny fixture.

use std::path::Path;

use anisostudy::model::arch::to_e3nn_layout;
use anisostudy::model::reference::{load_reference, ReferenceWeights};
use anisostudy::model::{AnisoNet, ComputeDevice, ModelFloat, ModelInput};
use dfdx::prelude::{Cpu, Device};

#[path = "support/test_device.rs"]
mod test_device;
use serde_json::Value;
use test_device::on_test_device;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/anisonet_tiny_forward.json");

/// ASE (IUPAC 2016) masses of the fixture's elements.
fn ase_mass(z: u8) -> f64 {
    match z {
        9 => 18.998403163,
        34 => 78.971,
        42 => 95.95,
        52 => 127.6,
        54 => 131.293,
        74 => 183.84,
        _ => panic!("no mass for Z = {z} in this test"),
    }
}

fn fixture() -> Option<(Value, ReferenceWeights)> {
    if !Path::new(FIXTURE).exists() {
        eprintln!("skipping: {FIXTURE} not found");
        return None;
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    Some((v, load_reference(Path::new(FIXTURE)).unwrap()))
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn batch(v: &Value) -> ModelInput {
    let parts: Vec<ModelInput> = v["structures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let numbers: Vec<u8> =
                s["numbers"].as_array().unwrap().iter().map(|z| z.as_u64().unwrap() as u8).collect();
            ModelInput {
                masses: numbers.iter().map(|&z| ase_mass(z)).collect(),
                node_graph: vec![0; numbers.len()],
                numbers,
                num_graphs: 1,
                edge_src: s["edge_src"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
                edge_dst: s["edge_dst"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
                edge_vec: s["edge_vec"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| f64s(r).try_into().unwrap())
                    .collect(),
            }
        })
        .collect();
    ModelInput::batch(&parts)
}

/// The fixture's structures as crystals (cell rows and Cartesian positions, Å).
fn structures(v: &Value) -> Vec<anisostudy::crystal::structure::Structure> {
    v["structures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| anisostudy::crystal::structure::Structure {
            lattice: s["cell"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| f64s(r).try_into().unwrap())
                .collect::<Vec<[f64; 3]>>()
                .try_into()
                .unwrap(),
            numbers: s["numbers"].as_array().unwrap().iter().map(|z| z.as_u64().unwrap() as u8).collect(),
            positions: s["positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| f64s(r).try_into().unwrap())
                .collect(),
        })
        .collect()
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

#[test]
fn architecture_matches_reference() {
    let Some((v, w)) = fixture() else { return };
    let layers = v["architecture"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), w.arch.convs.len());
    for (l, conv) in layers.iter().zip(&w.arch.convs) {
        assert_eq!(l["irreps_in"].as_str().unwrap(), conv.irreps_in.to_string());
        assert_eq!(l["irreps_out"].as_str().unwrap(), conv.irreps_out.to_string());
        assert_eq!(l["irreps_mid"].as_str().unwrap(), conv.tp.irreps_mid_e3nn.to_string());
        assert_eq!(l["tp_weight_numel"].as_u64().unwrap() as usize, conv.tp.weight_numel);
        let ins = l["tp_instructions"].as_array().unwrap();
        assert_eq!(ins.len(), conv.tp.instructions.len());
        for (a, b) in ins.iter().zip(&conv.tp.instructions) {
            let a = a.as_array().unwrap();
            assert_eq!(a[0].as_u64().unwrap() as usize, b.block_in);
            assert_eq!(a[1].as_u64().unwrap() as usize, b.l_edge);
            assert_eq!(a[2].as_u64().unwrap() as usize, b.e3nn_i_out);
            assert_eq!(a[3].as_str().unwrap(), "uvu");
            assert!((a[5].as_f64().unwrap() - b.path_weight).abs() < 1e-14);
        }
    }
    assert_eq!(v["architecture"]["irreps_edge_attr"].as_str().unwrap(), w.arch.irreps_edge.to_string());
}

fn check_parity<E: anisostudy::model::ModelFloat>(tol: f64) -> Option<(f64, f64)>
where
    Cpu: dfdx::prelude::Device<E>,
{
    let (v, w) = fixture()?;
    let flat: Vec<E> = w.flat.iter().map(|&x| E::of(x)).collect();
    let model = AnisoNet::<E>::from_flat(w.arch.clone(), flat, &Cpu::default());
    let input = batch(&v);
    let net = &model.net;
    let prep = net.prepare(&input).unwrap();
    let (out, cache) = net.forward(&model.params.flat.as_vec(), prep);
    let mut worst_hidden: f64 = 0.0;
    for (k, h) in v["hidden_layer_outputs"].as_array().unwrap().iter().enumerate() {
        let conv_irreps = &w.arch.convs[k].irreps_out;
        let gate_irreps = &w.arch.gates[k].irreps_out;
        assert_eq!(h["conv_irreps_out"].as_str().unwrap(), conv_irreps.to_string());
        assert_eq!(h["gate_irreps_out"].as_str().unwrap(), gate_irreps.to_string());
        for (name, irreps, ours) in
            [("conv_out", conv_irreps, &cache.conv_out[k]), ("gate_out", gate_irreps, &cache.gate_out[k])]
        {
            let d = irreps.dim();
            for (n, want) in h[name].as_array().unwrap().iter().enumerate() {
                let node: Vec<f64> = ours[n * d..(n + 1) * d].iter().map(|x| x.to64()).collect();
                let got = to_e3nn_layout(irreps, &node);
                let e = rel(&got, &f64s(want));
                assert!(e <= tol, "layer {k} {name} node {n}: relative error {e:e}");
                worst_hidden = worst_hidden.max(e);
            }
        }
    }
    let mut worst_out: f64 = 0.0;
    for (g, s) in v["structures"].as_array().unwrap().iter().enumerate() {
        let got: Vec<f64> = out[g].iter().map(|x| x.to64()).collect();
        let e = rel(&got, &f64s(&s["output_0e_2e"]));
        assert!(e <= tol, "structure {g} output: relative error {e:e}");
        let cart = anisostudy::e3::cartesian::irreps_to_cartesian(&got.clone().try_into().unwrap());
        let want: Vec<f64> = s["output_cartesian"].as_array().unwrap().iter().flat_map(f64s).collect();
        let e2 = rel(&cart.concat(), &want);
        assert!(e2 <= tol, "structure {g} Cartesian output: relative error {e2:e}");
        worst_out = worst_out.max(e).max(e2);
    }
    println!("parity ({}): hidden {worst_hidden:.2e}, outputs {worst_out:.2e}", std::any::type_name::<E>());
    Some((worst_hidden, worst_out))
}

#[test]
fn forward_matches_reference_f64() {
    check_parity::<f64>(1e-8);
}

#[test]
fn forward_matches_reference_f32() {
    check_parity::<f32>(1e-4);
}

#[test]
fn own_neighbour_list_and_mass_table_reproduce_reference() {
    let Some((v, w)) = fixture() else { return };
    let model = AnisoNet::<f64>::from_flat(w.arch.clone(), w.flat.clone(), &Cpu::default());
    for (s, want) in structures(&v).iter().zip(v["structures"].as_array().unwrap()) {
        let input = ModelInput::from_structure(s, w.config.cutoff).unwrap();
        assert_eq!(input.edge_src.len(), want["edge_src"].as_array().unwrap().len());
        assert_eq!(input.masses, input.numbers.iter().map(|&z| ase_mass(z)).collect::<Vec<_>>());
        let got = model.predict(&input).unwrap()[0];
        let e = rel(&got, &f64s(&want["output_0e_2e"]));
        assert!(e < 1e-8, "relative error {e:e}");
    }
}

/// The network on another engine than the fused one reproduces the
/// reference from our own neighbour list: `place` puts it there.
fn check_engine_parity<E: ModelFloat>(place: fn(&mut AnisoNet<E>), tolerance: f64)
where
    Cpu: Device<E>,
{
    let Some((v, w)) = fixture() else { return };
    let flat = w.flat.iter().map(|&p| E::of(p)).collect();
    let mut model = AnisoNet::<E>::from_flat(w.arch.clone(), flat, &Cpu::default());
    place(&mut model);
    for (s, want) in structures(&v).iter().zip(v["structures"].as_array().unwrap()) {
        let input = ModelInput::from_structure(s, w.config.cutoff).unwrap();
        let got = model.predict(&input).unwrap()[0];
        let err = rel(&got, &f64s(&want["output_0e_2e"]));
        println!("network on {}: relative error {err:.1e}", model.compute_device());
        assert!(err < tolerance, "{}: relative error {err:e}", model.compute_device());
    }
}

/// The tensor-op network (on dfdx's CPU device unless `ANISOSTUDY_TEST_DEVICE` names a GPU).
#[test]
fn tensor_network_reproduces_reference() {
    check_engine_parity::<f64>(on_test_device, 1e-8);
}

#[test]
fn tensor_network_reproduces_reference_f32() {
    check_engine_parity::<f32>(on_test_device, 1e-4);
}

/// The GPU engine's kernels, on their CPU emulation (what a GPU runs).
fn on_gpu_emulation<E: ModelFloat>(model: &mut AnisoNet<E>)
where
    Cpu: Device<E>,
{
    model.use_device(ComputeDevice::GpuEmulated).expect("the emulation opens");
}

#[test]
fn gpu_engine_reproduces_reference() {
    check_engine_parity::<f64>(on_gpu_emulation, 1e-10);
}

#[test]
fn gpu_engine_reproduces_reference_f32() {
    check_engine_parity::<f32>(on_gpu_emulation, 1e-4);
}
