"""Per-family confusion table and recovery per true domain against a planted map, and the findings prose naming
every mislabelled domain and every failed verification."""

import numpy as np

from tunelab.cortex import verify
from tunelab.cortex.findings import map_findings


def _planted():
    truth = np.zeros((10, 10), dtype=int)
    truth[:, 5:] = 1
    truth[7:, :] = 2  # three true domains: rows 0-6 split left/right, rows 7-9 the third
    recovered = truth.copy()
    recovered[0, 0] = -1  # a masked pixel
    recovered[7:, :] = 1  # the third true domain merged into recovered domain 1
    return truth, recovered


def test_confusion_counts_pixels_of_each_true_family_under_each_label():
    truth, recovered = _planted()
    families = ["colour", "edges", "curvature"]
    labels = {0: "colour", 1: "edges"}
    table = verify.family_confusion(truth, families, recovered, labels)
    usable = recovered >= 0
    for t, family in enumerate(families):  # reference: direct counting pixel by pixel
        expected = {}
        for tv, rv in zip(truth[usable], recovered[usable]):
            if tv == t:
                expected[labels[rv]] = expected.get(labels[rv], 0) + 1
        assert table[family] == expected
    assert sum(sum(row.values()) for row in table.values()) == usable.sum()


def test_recovery_per_true_domain_and_prose():
    truth, recovered = _planted()
    families = ["colour", "edges", "curvature"]
    labels = {0: "colour", 1: "edges"}
    per_true = verify.recovered_families(truth, families, recovered, labels)
    assert [per_true[d]["recovered"] for d in range(3)] == [True, True, False]
    assert per_true[2]["label"] == "edges" and per_true[2]["share"] == 1.0
    verification = {"per_true_domain": per_true,
                    "per_domain": [{"domain": 0, "d_prime": 2.1, "prefers_own_set": True},
                                   {"domain": 1, "d_prime": -0.63, "prefers_own_set": False}]}
    text = map_findings(verification, labels, families)
    assert "Recovered under their own family: colour, edges." in text
    assert 'true curvature domain was mislabelled: 100% of its pixels lie in domains named "edges"' in text
    assert "Domain 1 (edges, d' -0.63)" in text and "does not prefer its own images" in text
    assert "Domain 0" not in text
    import json

    assert map_findings(json.loads(json.dumps(verification)), json.loads(json.dumps(labels)), families) == text
    passing = {"per_true_domain": {0: per_true[0]}, "per_domain": verification["per_domain"][:1]}
    assert "Every simulated family was recovered" in map_findings(passing, labels, families)
    assert "All 1 recovered domains pass" in map_findings(passing, labels, families)


def test_confusion_table_rows_hold_every_label_count():
    from tunelab.cortex.findings import confusion_table

    table = confusion_table({"colour": {"colour": 5}, "curvature": {"edges": 3, "curvature": 1}})
    assert table.columns == ["true family / recovered label", "colour", "curvature", "edges"]
    assert table.rows == [["colour", 5, 0, 0], ["curvature", 0, 1, 3]]


def test_unmatched_recovered_domain_is_named_in_the_findings():
    from tunelab.cortex.report_figures import majority_domains, match_domains

    truth, recovered = _planted()
    recovered[7:, :] = 2  # the third true domain is recovered ...
    recovered[:3, 5:] = 3  # ... and true domain 1 is split: its smaller part has no one-to-one partner
    labels = {0: "colour", 1: "edges", 2: "curvature", 3: "edges"}
    families = ["colour", "edges", "curvature"]
    match, majority = match_domains(truth, recovered), majority_domains(truth, recovered)
    text = map_findings({"per_domain": []}, labels, families, match, majority)
    assert text == "Recovered domain 3 (edges) matches no true domain one to one (most of its pixels are in the true " \
                   "edges domain)."
    assert "matches no true domain" not in map_findings({"per_domain": []}, labels, families)  # no match given
