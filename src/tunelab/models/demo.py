"""Report section for the embedded models: what is installed, and one real generation from SmolLM2."""

from __future__ import annotations

import time
from pathlib import Path

from tunelab import models
from tunelab.report import Section, Table


def generate(model_name: str, prompt: str, max_new_tokens: int = 24) -> tuple[str, int, float]:
    """Greedy chat completion: (text, new tokens, seconds)."""
    model, tokenizer = models.load_causal_lm(model_name)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    start = time.perf_counter()
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    seconds = time.perf_counter() - start
    new = output[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True), int(new.numel()), seconds


def run(out_dir: Path, full: bool = False) -> list[Section]:
    """`full` changes nothing: listing the models and one generation is already the whole study."""
    rows = [models.describe(m) for m in models.EMBEDDED.values()]
    section = Section(
        title="Embedded models",
        prose="Models that ship inside PyPI packages, so every study runs with no model hub. "
        "Hub ids and local folders work wherever a model name is asked for.",
    )
    section.add_table(Table(
        columns=["name", "kind", "installed", "size (MB)", "source"],
        rows=[[r["name"], r["kind"], "yes" if r["installed"] else "no",
               round((r["size_bytes"] or 0) / 1e6), r["source"]] for r in rows],
    ))
    prompt = "Name three primary colours."
    text, n_tokens, seconds = generate(models.SMOLLM2.name, prompt)
    section.prose += f"\n\nSmolLM2-135M-Instruct, greedy, asked \"{prompt}\":\n{text.strip()}"
    section.key_numbers = {"models installed": sum(r["installed"] for r in rows), "tokens generated": n_tokens}
    section.results = {"models": rows, "generation": {"prompt": prompt, "text": text, "new_tokens": n_tokens}}
    return [section]
