import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


def make_records(n=8, rejected=2, conversational=False):
    records = []
    for i in range(n):
        prompt, chosen = f"Say something about {i}", f"Number {i} is nice."
        rej = [f"No {i}" + " bad" * (k + 1) for k in range(rejected)]
        if conversational:
            records.append({"prompt": [{"role": "user", "content": prompt}],
                            "chosen": [{"role": "assistant", "content": chosen}],
                            "rejected": [{"role": "assistant", "content": rej[0]}]})
        else:
            records.append({"prompt": prompt, "chosen": chosen, "rejected": rej})
    return records


@pytest.fixture
def records():
    return make_records()
