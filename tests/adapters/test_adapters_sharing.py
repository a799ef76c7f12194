"""Sharing a BoRA adapter: every loading route, each in a fresh process, either rebuilds the same model or fails.

The fixture (this process, tunelab's own code) saves a tiny random Llama, a perturbed BoRA adapter on it, the logits
of that adapted model, and its merged form. Each route then runs in a new interpreter that loads only from those
files: with tunelab imported the outputs must equal the saved logits (max |diff| < 1e-5); without tunelab the load
must raise, never give plain LoRA.
"""

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from tunelab.adapters import BidimLoraConfig, BidimLoraLinear
from tunelab.adapters.attach import load_adapter, read_adapter_config
from tunelab.adapters.config import PEFT_TYPE, mark_saved_config
from tunelab.models import tiny_llama

from adapters_testkit import make_base, perturb, targets

TOLERANCE = 1e-5
LLAMA_TARGETS = ["q_proj", "v_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """base/ (plain transformers), adapter/ (BoRA, in_first), merged/, expected.pt (ids, logits)."""
    root = tmp_path_factory.mktemp("sharing")
    model, tokenizer = tiny_llama(seed=0)
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    base = AutoModelForCausalLM.from_pretrained(root / "base").eval()  # records the path in the adapter config
    config = BidimLoraConfig(r=4, lora_alpha=4, bidim_order="in_first", target_modules=LLAMA_TARGETS)
    adapted = get_peft_model(base, config).eval()
    perturb(adapted, seed=3)
    ids = torch.randint(0, tokenizer.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = adapted(input_ids=ids).logits
    adapted.save_pretrained(root / "adapter")
    torch.save({"ids": ids, "logits": logits}, root / "expected.pt")
    copy.deepcopy(adapted).merge_and_unload().save_pretrained(root / "merged")
    return root


PRELUDE = """
import json, sys, warnings
import torch
warnings.simplefilter("always")
RECORD = warnings.catch_warnings(record=True)
CAUGHT = RECORD.__enter__()
ROOT = sys.argv[1]
EXPECTED = torch.load(f"{ROOT}/expected.pt")

def gap(model):
    with torch.no_grad():
        return (model(input_ids=EXPECTED["ids"]).logits - EXPECTED["logits"]).abs().max().item()

def report(**values):
    values["warnings"] = [str(w.message) for w in CAUGHT]
    values["modules"] = sorted(m for m in ("tunelab", "peft", "trl") if sys.modules.get(m) is not None)
    print("RESULT " + json.dumps(values))
"""


def run_fresh(root, body: str, block: tuple[str, ...] = ()) -> dict:
    """Run `body` in a new interpreter (after PRELUDE); `block` makes those packages unimportable there."""
    blocker = "".join(f"sys.modules[{name!r}] = None\n" for name in block)  # import fails, find_spec is None
    script = "import sys\n" + blocker + PRELUDE + textwrap.dedent(body)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_DISABLED": "true"}
    proc = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, env=env,
                          cwd=root, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def no_key_warnings(result: dict) -> bool:
    return not [w for w in result["warnings"] if "nexpected" in w or "issing" in w or "bidim" in w]


def test_adapter_config_is_marked_as_bora(shared):
    saved = json.loads((shared / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == PEFT_TYPE and saved["use_bidim_weight_decomposition"] is True
    assert saved["bidim_order"] == "in_first"
    weights = load_file(shared / "adapter" / "adapter_model.safetensors")
    assert sum(k.endswith("lora_magnitude_out") for k in weights) == sum(k.endswith("lora_magnitude_in")
                                                                        for k in weights) == 2 * len(LLAMA_TARGETS)


def test_plain_peft_without_tunelab_refuses_the_adapter(shared):
    result = run_fresh(shared, """
        from peft import LoraConfig, PeftConfig, PeftModel
        from transformers import AutoModelForCausalLM
        errors = {}
        for route in ("PeftModel.from_pretrained", "load_adapter", "PeftConfig", "LoraConfig"):
            base = AutoModelForCausalLM.from_pretrained(f"{ROOT}/base")
            try:
                if route == "PeftModel.from_pretrained":
                    PeftModel.from_pretrained(base, f"{ROOT}/adapter")
                elif route == "load_adapter":
                    base.load_adapter(f"{ROOT}/adapter")
                else:
                    (PeftConfig if route == "PeftConfig" else LoraConfig).from_pretrained(f"{ROOT}/adapter")
                errors[route] = None
            except Exception as err:
                errors[route] = f"{type(err).__name__}: {err}"
        report(errors=errors)
    """, block=("tunelab",))
    assert "tunelab" not in result["modules"] and "peft" in result["modules"]
    for route, error in result["errors"].items():
        assert error is not None, f"{route} loaded a BoRA adapter without tunelab"
        assert PEFT_TYPE in error, (route, error)


def test_peft_from_pretrained_with_tunelab_imported_after_peft(shared):
    result = run_fresh(shared, """
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
        import tunelab  # after PEFT: registers at once
        base = AutoModelForCausalLM.from_pretrained(f"{ROOT}/base")
        model = PeftModel.from_pretrained(base, f"{ROOT}/adapter").eval()
        first = gap(model)
        model.load_adapter(f"{ROOT}/adapter", adapter_name="again")  # PeftModel.load_adapter reads the file too
        model.set_adapter("again")
        layers = [m for m in model.modules() if type(m).__name__ == "BidimLoraLinear"]
        report(gap=first, gap_again=gap(model), config=type(model.peft_config["again"]).__name__,
               order=model.peft_config["default"].bidim_order, layers=len(layers),
               peft_type=str(model.peft_config["default"].peft_type.value))
    """)
    assert result["config"] == "BidimLoraConfig" and result["order"] == "in_first"
    assert result["peft_type"] == "LORA"  # in memory a LoRA config: PEFT's own LoRA code runs
    assert result["layers"] == 2 * len(LLAMA_TARGETS)
    assert result["gap"] < TOLERANCE and result["gap_again"] < TOLERANCE
    assert no_key_warnings(result), result["warnings"]


def test_transformers_load_adapter_with_tunelab_imported_before_transformers(shared):
    result = run_fresh(shared, """
        import tunelab  # before PEFT is imported: registers when it is
        from transformers import AutoModelForCausalLM
        base = AutoModelForCausalLM.from_pretrained(f"{ROOT}/base")
        base.load_adapter(f"{ROOT}/adapter")
        loaded = gap(base.eval())
        layers = sum(type(m).__name__ == "BidimLoraLinear" for m in base.modules())
        # transformers also resolves an adapter folder given as the model (base path read from the adapter config)
        direct = AutoModelForCausalLM.from_pretrained(f"{ROOT}/adapter").eval()
        report(gap=loaded, layers=layers, gap_direct=gap(direct))
    """)
    assert result["layers"] == 2 * len(LLAMA_TARGETS)
    assert result["gap"] < TOLERANCE and result["gap_direct"] < TOLERANCE
    assert no_key_warnings(result), result["warnings"]


def test_trl_sft_trainer_with_bidim_config_trains_and_saves_bora(shared):
    result = run_fresh(shared, """
        from datasets import Dataset
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer
        from tunelab.adapters import BidimLoraConfig
        tokenizer = AutoTokenizer.from_pretrained(f"{ROOT}/base")
        data = Dataset.from_dict({"text": ["BoRA rescales rows and columns.", "Both magnitudes are trained."] * 2})
        args = SFTConfig(output_dir=f"{ROOT}/trl", max_steps=1, per_device_train_batch_size=2, learning_rate=1e-2,
                         max_length=16, bf16=False, fp16=False, use_cpu=True, report_to=[], save_strategy="no",
                         logging_strategy="no", dataloader_num_workers=0, seed=0)
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(f"{ROOT}/base"), args=args,
                             train_dataset=data, processing_class=tokenizer,
                             peft_config=BidimLoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        model = trainer.model
        names = [n for n, p in model.named_parameters() if p.requires_grad and "lora_magnitude" in n]
        before = {n: p.detach().clone() for n, p in model.named_parameters() if n in names}
        trainer.train()
        moved = sum(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
        trainer.save_model(f"{ROOT}/trl/adapter")
        model.eval()
        with torch.no_grad():
            trained = model(input_ids=EXPECTED["ids"]).logits
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(f"{ROOT}/base"),
                                             f"{ROOT}/trl/adapter").eval()
        with torch.no_grad():
            reload_gap = (reloaded(input_ids=EXPECTED["ids"]).logits - trained).abs().max().item()
        saved = json.load(open(f"{ROOT}/trl/adapter/adapter_config.json"))
        report(magnitudes=len(names), moved=moved, peft_type=saved["peft_type"], reload_gap=reload_gap,
               layers=sum(type(m).__name__ == "BidimLoraLinear" for m in model.modules()))
    """)
    assert result["layers"] == 4 and result["magnitudes"] == 8  # 2 layers x (q, v) x (out, in)
    assert result["moved"] == 8  # both magnitudes of every layer got a gradient step
    assert result["peft_type"] == PEFT_TYPE
    assert result["reload_gap"] < TOLERANCE


def test_merged_model_is_a_plain_transformers_checkpoint(shared):
    files = {p.name for p in (shared / "merged").iterdir()}
    assert "adapter_config.json" not in files and "config.json" in files
    config = json.loads((shared / "merged" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    result = run_fresh(shared, """
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(f"{ROOT}/merged").eval()
        report(gap=gap(model), kind=type(model).__name__)
    """, block=("tunelab", "peft"))
    assert result["modules"] == [] and result["kind"] == "LlamaForCausalLM"
    assert result["gap"] < TOLERANCE


def test_import_of_adapters_and_its_cli_stays_light():
    """`import tunelab.cli` mounts `tunelab.adapters.cli`: that must not pull torch or PEFT in (the hook waits)."""
    script = ("import sys, tunelab.adapters, tunelab.adapters.cli\n"
              "print(sorted(m for m in ('torch', 'peft', 'transformers', 'trl') if m in sys.modules))\n"
              "print(any(type(f).__name__ == '_AfterPeftImport' for f in sys.meta_path))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[]", "True"]


# ---------------------------------------------------------------------------------------------- in this process


def test_from_pretrained_needs_no_config_argument_in_tunelab(tmp_path, kind):
    base = make_base(kind)
    model = get_peft_model(copy.deepcopy(base), BidimLoraConfig(r=3, bidim_order="in_first",
                                                                target_modules=targets(kind)))
    perturb(model)
    model.save_pretrained(tmp_path)
    x = torch.randn(4, 12)
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path))
    assert isinstance(loaded.peft_config["default"], BidimLoraConfig)
    assert (loaded(x) - model(x)).abs().max().item() < TOLERANCE


def test_config_without_the_bora_flag_is_saved_as_plain_lora(tmp_path):
    base = make_base("linear")
    model = get_peft_model(copy.deepcopy(base), BidimLoraConfig(r=2, use_dora=True,
                                                                use_bidim_weight_decomposition=False,
                                                                target_modules=targets("linear")))
    perturb(model)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["use_dora"] is True
    assert "use_bidim_weight_decomposition" not in saved and "bidim_order" not in saved
    x = torch.randn(4, 12)
    plain = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path))  # PEFT's own LoraConfig and DoRA
    assert type(plain.peft_config["default"]) is LoraConfig
    assert (plain(x) - model(x)).abs().max().item() < TOLERANCE


def test_adapter_saved_before_the_marker_loads_in_tunelab_and_can_be_upgraded(tmp_path):
    base = make_base("linear")
    model = get_peft_model(copy.deepcopy(base), BidimLoraConfig(r=3, target_modules=targets("linear")))
    perturb(model)
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "adapter_config.json"
    old = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**old, "peft_type": "LORA"}))  # how earlier tunelab versions wrote it
    x = torch.randn(4, 12)
    assert isinstance(read_adapter_config(tmp_path), BidimLoraConfig)
    assert (load_adapter(copy.deepcopy(base), tmp_path)(x) - model(x)).abs().max().item() < TOLERANCE
    mark_saved_config(tmp_path)
    assert json.loads(config_file.read_text())["peft_type"] == PEFT_TYPE
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path))
    assert (loaded(x) - model(x)).abs().max().item() < TOLERANCE


def test_bora_layers_rebuilt_from_file_alone(shared):
    base = AutoModelForCausalLM.from_pretrained(shared / "base")
    loaded = PeftModel.from_pretrained(base, str(shared / "adapter")).eval()
    expected = torch.load(shared / "expected.pt")
    assert sum(isinstance(m, BidimLoraLinear) for m in loaded.modules()) == 2 * len(LLAMA_TARGETS)
    with torch.no_grad():
        assert (loaded(input_ids=expected["ids"]).logits - expected["logits"]).abs().max().item() < TOLERANCE
