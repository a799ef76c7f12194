"""Plain-language findings of a map's verification: which simulated domains were recovered under their own family,
which were mislabelled or missed, and which recovered domains fail the in-silico check."""

from __future__ import annotations

from tunelab.report import Table


FAMILY_WORDS = {"colour": "colour", "texture": "texture", "edges": "edge orientation", "curvature": "curvature",
                "face": "faces"}


def families_phrase(families: list[str]) -> str:
    """The simulated families in plain words, each once, in order: "colour, texture and faces"."""
    words = [FAMILY_WORDS.get(f, f) for f in dict.fromkeys(families)]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def recovery_sentences(per_true_domain: dict[int, dict], true_names: list[str]) -> list[str]:
    """One sentence on what was recovered, one per mislabelled or missed true domain."""
    recovered = [true_names[d] for d, r in per_true_domain.items() if r["recovered"]]
    sentences = []
    if recovered:
        sentences.append(f"Recovered under their own family: {', '.join(recovered)}.")
    for domain, r in per_true_domain.items():
        if r["recovered"]:
            continue
        if r["label"] is None:
            sentences.append(f"The true {true_names[domain]} domain was not recovered (no usable pixels).")
        else:
            sentences.append(f"The true {true_names[domain]} domain was mislabelled: {r['share']:.0%} of its pixels "
                             f"lie in domains named \"{r['label']}\".")
    if all(r["recovered"] for r in per_true_domain.values()):
        sentences.append("Every simulated family was recovered under its own name.")
    return sentences


def verification_sentences(per_domain: list[dict], labels: dict[int, str]) -> list[str]:
    """One sentence per recovered domain that fails in-silico verification (d' <= 0 or not preferring its own
    images); a sentence saying all passed otherwise."""
    failing = [r for r in per_domain if r["d_prime"] <= 0 or not r["prefers_own_set"]]
    if not failing:
        return [f"All {len(per_domain)} recovered domains pass in-silico verification (d' > 0 and each prefers "
                "its own images)."] if per_domain else []
    sentences = []
    for r in failing:
        name = labels.get(r["domain"], "?")
        problems = []
        if r["d_prime"] <= 0:
            problems.append("answers its images no more than the rest of the sheet does")
        if not r["prefers_own_set"]:
            problems.append("does not prefer its own images")
        sentences.append(f"Domain {r['domain']} ({name}, d' {r['d_prime']:.2f}) {' and '.join(problems)}.")
    return sentences


def unmatched_sentences(match: dict[int, int], majority: dict[int, int], labels: dict[int, str],
                        true_names: list[str]) -> list[str]:
    """One sentence per recovered domain left without a true partner by the one-to-one matching (an extra split
    of a true domain), naming the true domain most of its pixels belong to (majority: recovered -> true)."""
    sentences = []
    for domain in sorted(set(labels) - set(match)):
        where = f" (most of its pixels are in the true {true_names[majority[domain]]} domain)" \
            if domain in majority else ""
        sentences.append(f"Recovered domain {domain} ({labels[domain]}) matches no true domain one to one{where}.")
    return sentences


def map_findings(verification: dict, labels: dict[int, str], true_names: list[str] | None = None,
                 match: dict[int, int] | None = None, majority: dict[int, int] | None = None) -> str:
    """The findings paragraph: recovery per true domain (when the truth is known), recovered domains without a
    true partner (when the one-to-one `match` is given) and failed verifications. Domain keys may be ints or,
    after a JSON round trip, strings."""
    labels = {int(k): v for k, v in labels.items()}
    sentences = []
    if true_names is not None and "per_true_domain" in verification:
        per_true = {int(k): v for k, v in verification["per_true_domain"].items()}
        sentences += recovery_sentences(per_true, list(true_names))
    if true_names is not None and match is not None:
        sentences += unmatched_sentences({int(k): int(v) for k, v in match.items()},
                                         {int(k): int(v) for k, v in (majority or {}).items()}, labels,
                                         list(true_names))
    sentences += verification_sentences(verification.get("per_domain", []), labels)
    return " ".join(sentences)


def confusion_table(confusion: dict[str, dict[str, int]]) -> Table:
    """True family (rows) x recovered label (columns), pixel counts."""
    columns = sorted({label for row in confusion.values() for label in row})
    return Table(["true family / recovered label", *columns],
                 [[family, *[row.get(label, 0) for label in columns]] for family, row in confusion.items()],
                 caption="Pixels of each simulated family under each recovered label (usable pixels).")
