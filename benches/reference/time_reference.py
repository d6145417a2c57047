"""Training and inference edges/s of the public PyTorch + e3nn AnisoNet model
on the batches `study doctor --export-batches` timed, for a side-by-side
figure on the same device (scripts/gpu-check.sh runs it on a GPU).

    python3 benches/reference/time_reference.py --model PATH/model.py \\
        --batches batches.json [--device cuda] [--dtype float32] [--out result.json]

The model comes from a copy of its public source (github.com/virtualatoms/
AnisoNet, `src/anisonet/model.py`), named by --model and never part of this
repository. Only that file is imported (it needs torch and e3nn alone), not
its package, whose `__init__` brings in the CLI and the data pipeline with
ASE and pymatgen, which a GPU node may lack. It is built at the
configuration the batches were made with (the published one: em 48, two
gate layers, l_max 3, mul 48), one-hot(Z)
embedded as node input and one-hot(Z)·mass as node attributes, as the
reference's data pipeline does. A training step is forward, MSE loss against
ones, backward and AdamW, as `study doctor` times it.
"""

import argparse
import importlib.util
import json
import time
import types


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the reference's model.py (src/anisonet/model.py)")
    parser.add_argument("--batches", required=True, help="JSON written by study doctor --export-batches")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--out", help="also write the result here as JSON")
    args = parser.parse_args()

    import torch

    spec = importlib.util.spec_from_file_location("anisonet_model", args.model)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    E3nnModel = module.E3nnModel

    with open(args.batches) as f:
        exported = json.load(f)
    cfg = exported["config"]
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    torch.set_default_dtype(dtype)
    model = E3nnModel(
        in_dim=118,
        em_dim=cfg["em_dim"],
        in_attr_dim=118,
        em_attr_dim=cfg["em_dim"],
        irreps_out="1x0e+1x2e",
        layers=cfg["layers"],
        mul=cfg["mul"],
        lmax=cfg["lmax"],
        max_radius=cfg["cutoff"],
        number_of_basis=cfg["num_basis"],
        radial_layers=cfg["radial_layers"],
        radial_neurons=cfg["radial_neurons"],
        num_neighbors=cfg["num_neighbors"],
    ).to(device=device, dtype=dtype)

    def batch(b):
        z = torch.tensor(b["numbers"], dtype=torch.long) - 1
        one_hot = torch.nn.functional.one_hot(z, 118).to(dtype)
        mass = torch.tensor(b["masses"], dtype=dtype)[:, None]
        data = types.SimpleNamespace(
            node_input=one_hot.to(device),
            node_attr=(one_hot * mass).to(device),
            edge_index=torch.tensor([b["edge_src"], b["edge_dst"]], dtype=torch.long, device=device),
            edge_vec=torch.tensor(b["edge_vec"], dtype=dtype, device=device),
            batch=torch.tensor(b["node_graph"], dtype=torch.long, device=device),
        )
        return data, len(b["edge_src"]), b["num_graphs"]

    batches = [batch(b) for b in exported["batches"]]
    warm, timed = batches[0], batches[1:]
    edges = sum(e for _, e, _ in timed)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        model(warm[0])
        sync()
        start = time.perf_counter()
        for data, _, _ in timed:
            model(data)
        sync()
        inference = edges / (time.perf_counter() - start)

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.03)

    def step(data, graphs):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(data), torch.ones(graphs, 6, dtype=dtype, device=device))
        loss.backward()
        opt.step()

    step(warm[0], warm[2])
    sync()
    start = time.perf_counter()
    for data, _, graphs in timed:
        step(data, graphs)
    sync()
    training = edges / (time.perf_counter() - start)

    result = {
        "implementation": "PyTorch + e3nn reference (public AnisoNet model)",
        "torch": torch.__version__,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "dtype": args.dtype,
        "batches": len(timed),
        "edges_per_batch": edges // max(len(timed), 1),
        "inference_edges_per_s": inference,
        "training_edges_per_s": training,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
