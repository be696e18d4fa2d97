"""Row helpers, configuration and the latency model behind the batching dispatcher."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kubento.batching import (
    BatchingConfig,
    BatchOutputError,
    count_rows,
    join_rows,
    split_rows,
    take_rows,
)
from kubento.batching.latency import ArrivalRate, LatencyModel
from kubento.contract import BATCHING_KNOBS, BatchingOverrides


def test_count_rows_reads_the_batch_dimension_of_every_argument() -> None:
    rows, _ = count_rows((np.zeros((3, 5)), np.zeros((3,))), 0)
    assert rows == 3
    rows, _ = count_rows((np.zeros((2, 7, 5)),), 1)
    assert rows == 7


def test_count_rows_rejects_arguments_with_different_row_counts() -> None:
    with pytest.raises(ValueError, match="argument 1 has 2 rows"):
        count_rows((np.zeros((3, 5)), np.zeros((2, 5))), 0)


def test_count_rows_rejects_an_array_without_the_batch_dimension() -> None:
    with pytest.raises(ValueError, match="no batch dimension 1"):
        count_rows((np.zeros(3),), 1)


def test_count_rows_rejects_unsupported_types() -> None:
    with pytest.raises(TypeError, match="argument 0 is a dict"):
        count_rows(({"a": 1},), 0)


def test_count_rows_rejects_empty_calls() -> None:
    with pytest.raises(ValueError, match="0 rows"):
        count_rows((np.zeros((0, 3)),), 0)


def test_layouts_that_cannot_be_concatenated_have_different_signatures() -> None:
    _, a = count_rows((np.zeros((1, 4), np.float32),), 0)
    _, b = count_rows((np.zeros((5, 4), np.float32),), 0)
    _, c = count_rows((np.zeros((1, 4), np.float64),), 0)
    _, d = count_rows((np.zeros((1, 5), np.float32),), 0)
    assert a == b
    assert len({a, c, d}) == 3


def test_take_and_join_round_trip_along_a_non_zero_dimension() -> None:
    value = np.arange(24).reshape(2, 6, 2)
    pieces = [take_rows(value, 0, 2, 1), take_rows(value, 2, 6, 1)]
    assert np.array_equal(join_rows(pieces, 1), value)


def test_lists_join_as_lists() -> None:
    assert join_rows([[1, 2], [3]], 0) == [1, 2, 3]


def test_split_rows_cuts_each_element_of_a_tuple_output() -> None:
    output = (np.arange(6).reshape(3, 2), ["a", "b", "c"])
    first, second = split_rows(output, [1, 2], 0)
    assert np.array_equal(first[0], [[0, 1]]) and first[1] == ["a"]
    assert np.array_equal(second[0], [[2, 3], [4, 5]]) and second[1] == ["b", "c"]


def test_split_rows_rejects_an_output_with_the_wrong_row_count() -> None:
    with pytest.raises(BatchOutputError, match="4 rows along dimension 0 for a batch of 3"):
        split_rows(np.zeros((4, 2)), [1, 2], 0)


def test_split_rows_rejects_a_scalar_output() -> None:
    with pytest.raises(BatchOutputError, match="cannot be split"):
        split_rows(3.0, [1], 0)


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingConfig(max_batch_size=0)
    with pytest.raises(ValueError, match="max_latency_ms"):
        BatchingConfig(max_latency_ms=0)
    with pytest.raises(ValueError, match="max_queue_size"):
        BatchingConfig(max_queue_size=-1)
    with pytest.raises(ValueError, match="timeout_ms"):
        BatchingConfig(timeout_ms=0)
    with pytest.raises(ValueError, match="max_concurrency"):
        BatchingConfig(max_concurrency=0)
    with pytest.raises(ValueError, match=r"max_queue_size \(8\) is smaller than max_batch_size"):
        BatchingConfig(max_batch_size=64, max_queue_size=8)


def test_overrides_replace_only_the_knobs_they_set() -> None:
    config = BatchingConfig(max_batch_size=8, max_latency_ms=50, max_queue_size=100)
    merged = config.with_overrides(
        BatchingOverrides(max_batch_size=32, timeout_ms=500, max_concurrency=2)
    )
    assert merged == BatchingConfig(
        max_batch_size=32, max_latency_ms=50, max_queue_size=100, timeout_ms=500, max_concurrency=2
    )


def test_every_knob_of_the_table_is_a_batching_config_field_with_the_tables_default() -> None:
    config = BatchingConfig()
    assert [knob.name for knob in BATCHING_KNOBS] == [f.name for f in dataclasses.fields(config)]
    assert all(getattr(config, knob.name) == knob.default for knob in BATCHING_KNOBS)


def test_overrides_come_from_the_contract_environment() -> None:
    env = {"KUBENTO_MAX_BATCH_SIZE": "16", "KUBENTO_MAX_CONCURRENCY": "2"}
    overrides = BatchingOverrides.from_env(env)
    assert overrides == BatchingOverrides(max_batch_size=16, max_concurrency=2)
    assert overrides.to_env() == env
    with pytest.raises(
        ValueError, match="KUBENTO_MAX_CONCURRENCY='0' must be an integer from 1 to 64"
    ):
        BatchingOverrides.from_env({"KUBENTO_MAX_CONCURRENCY": "0"})


def test_a_caller_reads_each_runners_overrides_from_one_variable() -> None:
    from kubento import contract

    small = BatchingOverrides(max_batch_size=4, max_queue_size=8)
    raw = contract.encode_runner_batching({"small": small, "plain": BatchingOverrides()})
    env = {contract.ENV_RUNNER_BATCHING: raw, "KUBENTO_MAX_BATCH_SIZE": "99"}
    assert contract.batching_overrides_for("small", env) == small
    assert contract.batching_overrides_for("plain", env) == BatchingOverrides()
    # Where the variable is absent (a runner pod, `kubento serve`), the process's own knobs.
    assert contract.batching_overrides_for("x", {"KUBENTO_MAX_BATCH_SIZE": "99"}) == (
        BatchingOverrides(max_batch_size=99)
    )
    for bad, message in [
        ("{", "KUBENTO_RUNNER_BATCHING is not valid JSON"),
        ('{"small": 4}', "must be a JSON object of runner name"),
        ('{"small": {"batch": 4}}', r"\['small'\]: unknown knobs \['batch'\]"),
        ('{"small": {"max_batch_size": 0}}', r"\['small'\]: .*max_batch_size"),
    ]:
        with pytest.raises(ValueError, match=message):
            contract.batching_overrides_for("small", {contract.ENV_RUNNER_BATCHING: bad})


def test_an_untrained_latency_model_predicts_nothing() -> None:
    assert LatencyModel(8).predict(4) is None


def test_the_latency_model_interpolates_between_observed_sizes() -> None:
    model = LatencyModel(8)
    model.observe(2, 0.010)
    model.observe(6, 0.020)
    assert model.predict(4) == pytest.approx(0.015)
    assert model.predict(1) == pytest.approx(0.010)
    assert model.predict(8) == pytest.approx(0.020 * 8 / 6)


def test_the_latency_model_ignores_a_single_outlier() -> None:
    model = LatencyModel(8)
    for seconds in (0.010, 0.011, 0.500, 0.010):
        model.observe(4, seconds)
    assert model.predict(4) == pytest.approx(0.0105)


def test_the_latency_model_follows_a_lasting_change() -> None:
    model = LatencyModel(8, window=5)
    for _ in range(5):
        model.observe(4, 0.010)
    for _ in range(3):
        model.observe(4, 0.030)
    assert model.predict(4) == pytest.approx(0.030)


def test_the_latency_model_never_predicts_less_for_more_rows() -> None:
    model = LatencyModel(8)
    model.observe(2, 0.020)
    model.observe(4, 0.010)
    assert model.predict(4) == pytest.approx(0.020)


def test_a_prior_warm_starts_the_latency_model() -> None:
    model = LatencyModel(8, prior={8: 0.040})
    assert model.predict(8) == pytest.approx(0.040)
    model.observe(8, 0.020)
    assert model.predict(8) == pytest.approx(0.020)


def test_arrival_rate_counts_rows_in_the_trailing_window() -> None:
    rate = ArrivalRate(window_s=0.1)
    rate.record(10.0, 5)
    rate.record(10.05, 5)
    assert rate.rate(10.06) == pytest.approx(100)
    assert rate.rate(10.12) == pytest.approx(50)
    assert rate.rate(10.3) == 0


def test_max_concurrency_auto_comes_from_the_environment_and_other_words_do_not() -> None:
    overrides = BatchingOverrides.from_env({"KUBENTO_MAX_CONCURRENCY": "auto"})
    assert overrides == BatchingOverrides(max_concurrency="auto")
    assert overrides.to_env() == {"KUBENTO_MAX_CONCURRENCY": "auto"}
    message = "KUBENTO_MAX_CONCURRENCY='fast' must be an integer from 1 to 64 or \"auto\""
    with pytest.raises(ValueError, match=message):
        BatchingOverrides.from_env({"KUBENTO_MAX_CONCURRENCY": "fast"})
