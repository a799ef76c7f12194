"""The exact tabular experiment: does the learned implicit reward recover the true reward with slope 1?

Setting (all finite, every expectation computed exactly, optimised to convergence in float64):

- P prompts and a shared space of K responses (a response written for one prompt is a possible, usually
  poor, response to another, as in a language model). True reward r*(x, y) ~ N(0, reward_scale^2).
- The offline data follow the energy-based (infinite-candidate) preference model: the preferred response
  to x is y+ ~ p*(y|x) = softmax_y r*(x, y). Each response y comes with ONE fixed rejected partner s(x, y)
  (a random other response), so a record is (x, y+, s(x, y+)): one comparison per chosen response, in one
  direction. The comparison graph y+ -> s(x, y+) is not strongly connected, so the Bradley-Terry MLE does
  not exist: DPO can drive every recorded margin to infinity and leaves the rest to the initialisation.
- EPA adds weak negatives, from a fixed, seeded table of `weak_draws` tuples of nw draws per (x, y+) (a
  deterministic objective), drawn one of two ways (`weak_sources`):
  "uniform": u ~ Uniform(K), any response of the space paired with x;
  "other-prompts": as the trainer draws them, a response recorded for another prompt: x' uniform among the other
  prompts, its chosen y' ~ p*(.|x') or, with probability 1/2, that record's rejected s(x', y').
- Policy: a softmax table pi_theta(y|x); reference pi_ref a random softmax table. Implicit reward
  r = beta * (log pi_theta - log pi_ref), identified up to a per-prompt constant, so rewards are
  centred per prompt before comparing with r*.

Measures (the paper's Table 1): slope and Pearson r of learned on true reward (centred per prompt),
the spread of learned rewards across initialisations (max std over (x, y)), KL(pi_theta || pi_ref).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from tunelab.align.preference.losses import dpo_loss, epa_loss_from_rewards
from tunelab.stats import sample_sd


@dataclasses.dataclass
class TheoryConfig:
    prompts: int = 16
    responses: int = 12
    reward_scale: float = 1.0
    beta: float = 0.1
    inits: int = 5
    init_scale: float = 1.0  # std of the logit perturbation around the reference at initialisation
    weak_negatives: tuple[int, ...] = (0, 1, 4, 16)  # EPA variants by nw
    w: float = 1.0
    weak_draws: int = 64
    weak_sources: tuple[str, ...] = ("uniform", "other-prompts")
    max_iter: int = 2000
    tolerance: float = 1e-12
    seed: int = 0


@dataclasses.dataclass
class TabularProblem:
    true_reward: torch.Tensor  # [P, K]
    log_ref: torch.Tensor  # [P, K]
    positive_prob: torch.Tensor  # [P, K] p*(y|x)
    partner: torch.Tensor  # [P, K] index of the fixed rejected response s(x, y)
    weak: dict[str, torch.Tensor]  # source -> [P, K, D, max_nw] weak-negative indices


def make_problem(cfg: TheoryConfig) -> TabularProblem:
    gen = torch.Generator().manual_seed(cfg.seed)
    P, K = cfg.prompts, cfg.responses
    true_reward = cfg.reward_scale * torch.randn(P, K, generator=gen, dtype=torch.float64)
    log_ref = torch.log_softmax(torch.randn(P, K, generator=gen, dtype=torch.float64), dim=-1)
    offsets = torch.randint(1, K, (P, K), generator=gen)  # partner != y
    partner = (torch.arange(K).unsqueeze(0) + offsets) % K
    max_nw = max(cfg.weak_negatives + (1,))
    positive_prob = torch.softmax(true_reward, dim=-1)
    weak = {"uniform": torch.randint(0, K, (P, K, cfg.weak_draws, max_nw), generator=gen)}
    weak["other-prompts"] = other_prompt_draws(positive_prob, partner, (cfg.weak_draws, max_nw), gen)
    return TabularProblem(true_reward, log_ref, positive_prob, partner, weak)


def other_prompt_draws(positive_prob: torch.Tensor, partner: torch.Tensor, shape: tuple[int, int],
                       gen: torch.Generator) -> torch.Tensor:
    """[P, K, *shape] responses recorded for other prompts: x' != x uniform, y' ~ p*(.|x'), and with probability
    1/2 the record's rejected partner s(x', y') instead of y' (the trainer's weak_source="both")."""
    P, K = positive_prob.shape
    n = K * shape[0] * shape[1]
    other = (torch.arange(P).unsqueeze(1) + torch.randint(1, P, (P, n), generator=gen)) % P  # [P, n], never x
    chosen = torch.multinomial(positive_prob[other.reshape(-1)], 1, generator=gen).reshape(P, n)
    rejected = partner[other, chosen]
    use_rejected = torch.rand(P, n, generator=gen) < 0.5
    return torch.where(use_rejected, rejected, chosen).reshape(P, K, *shape)


def implicit_reward_table(theta: torch.Tensor, log_ref: torch.Tensor, beta: float) -> torch.Tensor:
    return beta * (torch.log_softmax(theta, dim=-1) - log_ref)


def expected_dpo_loss(r: torch.Tensor, problem: TabularProblem) -> torch.Tensor:
    """E_{x, y+ ~ p*}[-log sigmoid(r(x, y+) - r(x, s(x, y+)))] (rewards already scaled)."""
    rejected = torch.gather(r, 1, problem.partner)
    per = dpo_loss(r, rejected, torch.zeros_like(r), torch.zeros_like(r), beta=1.0)
    return (problem.positive_prob * per).sum(-1).mean()


def expected_epa_loss(r: torch.Tensor, problem: TabularProblem, nw: int, w: float,
                      source: str = "uniform") -> torch.Tensor:
    """E_{x, y+ ~ p*, u ~ weak table}[log(w + e^{r(s) - r(y+)} + sum_u e^{r(u) - r(y+)})]."""
    P, K = r.shape
    rejected = torch.gather(r, 1, problem.partner)  # [P, K]
    D = problem.weak[source].shape[2]
    chosen = r.unsqueeze(-1).expand(P, K, D).reshape(-1)
    strong = rejected.unsqueeze(-1).expand(P, K, D).reshape(-1, 1)
    weak = None
    if nw > 0:
        idx = problem.weak[source][..., :nw].reshape(P, -1)
        weak = torch.gather(r, 1, idx).reshape(-1, nw)
    per = epa_loss_from_rewards(chosen, strong, weak, w=w).reshape(P, K, D).mean(-1)
    return (problem.positive_prob * per).sum(-1).mean()


def optimise(objective, theta0: torch.Tensor, max_iter: int, tolerance: float) -> tuple[torch.Tensor, float, float]:
    """Full-batch L-BFGS (strong Wolfe) to a gradient tolerance; returns (theta, loss, grad_norm)."""
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance,
                            tolerance_change=1e-16, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective(theta)
        loss.backward()
        return loss

    opt.step(closure)
    loss = objective(theta)
    (grad,) = torch.autograd.grad(loss, theta)
    return theta.detach(), float(loss.detach()), float(grad.abs().max())


def centred(r: torch.Tensor) -> torch.Tensor:
    return r - r.mean(-1, keepdim=True)


def slope_and_pearson(learned: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of learned on true and Pearson r (both already centred per prompt)."""
    x, y = true.ravel(), learned.ravel()
    slope = float(np.dot(x - x.mean(), y - y.mean()) / np.dot(x - x.mean(), x - x.mean()))
    return slope, float(np.corrcoef(x, y)[0, 1])


def kl_to_reference(theta: torch.Tensor, log_ref: torch.Tensor) -> float:
    logp = torch.log_softmax(theta, dim=-1)
    return float((logp.exp() * (logp - log_ref)).sum(-1).mean())


def method_label(method: str, nw: int, source: str) -> str:
    if method == "dpo":
        return "dpo"
    return f"epa(nw={nw})" if nw == 0 or source == "uniform" else f"epa(nw={nw}, {source})"


def run_method(problem: TabularProblem, cfg: TheoryConfig, method: str, nw: int = 0, source: str = "uniform") -> dict:
    def objective(theta):
        r = implicit_reward_table(theta, problem.log_ref, cfg.beta)
        return (expected_dpo_loss(r, problem) if method == "dpo"
                else expected_epa_loss(r, problem, nw, cfg.w, source))

    learned, runs = [], []
    for i in range(cfg.inits):
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + i + 1)
        theta0 = problem.log_ref + cfg.init_scale * torch.randn(problem.log_ref.shape, generator=gen, dtype=torch.float64)
        theta, loss, grad = optimise(objective, theta0, cfg.max_iter, cfg.tolerance)
        r = centred(implicit_reward_table(theta, problem.log_ref, cfg.beta))
        slope, pearson = slope_and_pearson(r.numpy(), centred(problem.true_reward).numpy())
        runs.append({"slope": slope, "pearson": pearson, "kl": kl_to_reference(theta, problem.log_ref),
                     "loss": loss, "grad_max": grad, "max_abs_reward": float(r.abs().max())})
        learned.append(r.numpy())
    stack = np.stack(learned)
    spread = float(stack.std(axis=0).max())
    summary = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
    return {"method": method_label(method, nw, source), "nw": nw, "weak_source": source if nw else None,
            "spread": spread, **summary, "slope_std": sample_sd(run["slope"] for run in runs), "runs": runs,
            "learned_first": learned[0]}


def run_theory(cfg: TheoryConfig | None = None, progress=None) -> dict:
    """DPO and EPA (each nw in cfg.weak_negatives) from cfg.inits initialisations on one problem."""
    cfg = cfg or TheoryConfig()
    problem = make_problem(cfg)
    unknown = set(cfg.weak_sources) - set(problem.weak)
    if unknown:
        raise ValueError(f"unknown weak-negative source(s) {sorted(unknown)}; choose from {sorted(problem.weak)}")
    jobs = [("dpo", 0, "uniform")] + [("epa", 0, "uniform")] * (0 in cfg.weak_negatives)
    jobs += [("epa", nw, source) for source in cfg.weak_sources for nw in cfg.weak_negatives if nw > 0]
    if progress is not None:
        jobs = progress(jobs)
    results = [run_method(problem, cfg, method, nw, source) for method, nw, source in jobs]
    return {"config": dataclasses.asdict(cfg), "true_reward": centred(problem.true_reward).numpy(), "results": results}


def theory_figure(outcome: dict):
    """Learned vs true reward (first initialisation) for DPO and the EPA variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = outcome["results"]
    cols = min(len(results), 5)
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), sharex=True, squeeze=False)
    true = outcome["true_reward"].ravel()
    for ax in axes.ravel()[len(results):]:
        ax.set_visible(False)
    for ax, res in zip(axes.ravel(), results):
        ax.scatter(true, np.asarray(res["learned_first"]).ravel(), s=6, alpha=0.6)
        lim = np.array([true.min(), true.max()])
        ax.plot(lim, lim, "k--", lw=1, label="slope 1")
        ax.set_title(f"{res['method']}\nslope {res['slope']:.3f}  r {res['pearson']:.3f}\nspread {res['spread']:.1e}",
                     fontsize=8)
        ax.set_xlabel("true reward (centred)")
    for ax in axes[:, 0]:
        ax.set_ylabel("learned implicit reward (centred)")
    fig.tight_layout()
    return fig
