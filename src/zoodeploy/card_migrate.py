"""Cards of older schemas rewritten as the current one on read: schema 1 (free-form recipe /
validation / settings / provenance dicts) and schema 2 (square-only preprocessing). Pure dict work;
`ModelCard` validates the result."""

from __future__ import annotations

from typing import Any

from zoodeploy.recipes import migrate_v1_recipe

_SETTINGS_RENAMES = {"threads": "intra_op_threads"}


def migrate(card: dict[str, Any]) -> dict[str, Any]:
    """Any older card as the current schema, one step at a time."""
    if card.get("schema_version", 1) < 2:
        card = _v1_to_v2(card)
    return _v2_to_v3(card)


def _v2_to_v3(card: dict[str, Any]) -> dict[str, Any]:
    """Schema 2's square `input_size` becomes `size` [H, W]; the fields it lacked take the values it
    always meant (crop, RGB, [0, 1], NCHW float32): `Preprocessing`'s defaults."""
    card = {**card, "schema_version": 3}
    prep = dict(card.get("preprocessing") or {})
    if "input_size" in prep:
        side = prep.pop("input_size")
        prep.setdefault("size", [side, side])
    card["preprocessing"] = prep
    return card


def _v1_to_v2(card: dict[str, Any]) -> dict[str, Any]:
    card = {**card, "schema_version": 2}
    card["variants"] = {n: _variant(v) for n, v in (card.get("variants") or {}).items()}
    card["eager_latency"] = {b: _latency(s) for b, s in (card.get("eager_latency") or {}).items()}
    card["provenance"] = _provenance(card.get("provenance") or {})
    return card


def _variant(v: dict[str, Any]) -> dict[str, Any]:
    v = dict(v)
    old = dict(v.get("validation") or {})
    recipe = migrate_v1_recipe(v["name"], v.get("runtime", ""), v.get("made_by", ""), v.get("recipe") or {})
    if "accuracy_control" in old:
        recipe["control"] = old.pop("accuracy_control")
    if recipe["kind"] == "ort-format":
        recipe.setdefault("required_operators", old.pop("required_operators", []))
        if "mobile_usability" in old:
            recipe["mobile_usability"] = old.pop("mobile_usability")
    v["recipe"] = recipe
    speed = old.pop("speed", None)
    if speed:
        v["speed"] = speed
    if "op_counts_after" in old or "op_counts" in old:
        v["graph"] = {"nodes": old.get("nodes_after", old.get("nodes", 0)),
                      "op_counts": old.get("op_counts_after", old.get("op_counts", {})),
                      "nodes_before": old.get("nodes_before"), "op_counts_before": old.get("op_counts_before")}
    if "seconds" in old:  # schema 1: seconds per export step
        secs = old["seconds"]
        v["seconds"] = round(sum(secs.values()), 3) if isinstance(secs, dict) else secs
    v["validation"] = _validation(old)
    v["latency"] = {b: _latency(s) for b, s in (v.get("latency") or {}).items()}
    return v


def _validation(old: dict[str, Any]) -> dict[str, Any] | None:
    comparisons = list(old.get("comparisons") or [])
    if old.get("comparison"):  # schema 1's fp16 wrote one comparison under another key
        comparisons.append(old["comparison"])
    if not comparisons:
        return None
    checks = [f"onnx.checker {old['onnx_checker']}"] if old.get("onnx_checker") else []
    return {"reference": old.get("reference", "PyTorch"), "samples": old.get("samples", ""),
            "runtime": old.get("runtime"), "tolerance": old.get("tolerance"),
            "comparisons": comparisons, "checks": checks}


def _latency(stats: dict[str, Any]) -> dict[str, Any]:
    settings = {_SETTINGS_RENAMES.get(k, k): v for k, v in (stats.get("settings") or {}).items()}
    if not settings:
        return {**stats, "settings": None}
    known = {"runtime", "version", "device", "mode", "intra_op_threads", "inter_op_threads", "providers",
             "provider_options", "graph_optimization", "spinning", "precision", "flags", "tensorrt",
             "batch_range", "io", "stable", "windows", "measure_seconds", "interleaved_with", "bench",
             "run_id", "host", "process_peak_rss_mb"}
    config = {k: str(v) for k, v in settings.items() if k not in known}
    typed = {k: v for k, v in settings.items() if k in known}
    typed.setdefault("runtime", "unknown")
    return {**stats, "settings": {**typed, "config": config}}


def _provenance(old: dict[str, Any]) -> dict[str, Any]:
    keep = {"created", "host", "machine", "versions", "train_config", "source_onnx", "card_from",
            "build", "export_failure"}
    new = {k: v for k, v in old.items() if k in keep}
    if old.get("store_import"):
        si = old["store_import"]
        new["store_import"] = {"source": si.get("from", ""), "variant": si.get("variant", ""),
                               "variants_left_out": si.get("variants_left_out", [])}
    failure = new.get("export_failure")
    if failure:
        new["export_failure"] = {**failure, "validation": _validation(failure.get("validation") or {})}
    return new
