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


def test_a_cycle_names_only_its_steps_in_data_order_from_the_first_declared():
    # c reads b's output, b reads a's, a reads c's: the data flows a -> b -> c -> a; d only waits.
    steps = [spec("d", 4, 3), spec("c", 3, 2), spec("a", 1, 3), spec("b", 2, 1)]
    with pytest.raises(PipelineDefinitionError, match=r"^The steps form a cycle: c -> a -> b\.$"):
        plan(steps)


def test_ties_keep_the_declared_order_wave_by_wave():
    # Two independent chains: each wave runs its ready steps in declared order.
    steps = [spec("y2", 4, 3), spec("x2", 2, 1), spec("y1", 3), spec("x1", 1), spec("z", 5, 2, 4)]
    assert [s.name for s in plan(steps)] == ["y1", "x1", "y2", "x2", "z"]
    # The same steps declared in another order keep that order among ties.
    again = [steps[3], steps[2], steps[1], steps[0], steps[4]]
    assert [s.name for s in plan(again)] == ["x1", "y1", "x2", "y2", "z"]


def test_a_step_reading_its_own_output_is_no_cycle():
    assert [s.name for s in plan([spec("merge", 1, 1), spec("first", 2)])] == ["merge", "first"]
