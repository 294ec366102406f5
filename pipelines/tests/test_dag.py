import pytest

from pipelines.dag import PipelineDefinitionError, StepSpec, plan


def spec(name, output, *inputs):
    return StepSpec(key=name, name=name, output=output, inputs=frozenset(inputs))


def test_steps_run_after_the_steps_that_produce_their_inputs():
    steps = [spec("aggregate", 3, 2), spec("refine", 2, 1), spec("ingest", 1)]
    assert [s.name for s in plan(steps)] == ["ingest", "refine", "aggregate"]


def test_independent_steps_keep_their_declared_order():
    steps = [spec("b", 2), spec("a", 1), spec("c", 3, 1, 2)]
    assert [s.name for s in plan(steps)] == ["b", "a", "c"]


def test_a_cycle_is_refused():
    with pytest.raises(PipelineDefinitionError, match="cycle: x -> y"):
        plan([spec("x", 1, 2), spec("y", 2, 1)])


def test_reading_a_dataset_nobody_produces_is_refused():
    with pytest.raises(PipelineDefinitionError, match="reads chart.ghost, which no step produces"):
        plan([spec("x", 1, 9)], names={9: "chart.ghost"})


def test_a_dataset_another_pipeline_produces_may_be_read():
    assert [s.name for s in plan([spec("x", 1, 9)], produced_elsewhere=[9])] == ["x"]


def test_two_steps_writing_one_dataset_are_refused():
    with pytest.raises(PipelineDefinitionError, match="both write"):
        plan([spec("x", 1), spec("y", 1)])
