import pytest

from edgekd.config import builtin_recipe_path, load_recipe, parse_recipe
from edgekd.errors import ConfigError


def test_builtin_recipe_is_valid():
    r = load_recipe(builtin_recipe_path())
    assert r.name == "cellsort"
    assert r.data.classes == ["B", "T4"]
    assert [s.arch for s in r.students][:2] == ["cellsort-cnn", "cellsort-cnn"]
    kd = r.students[1].loss
    assert [(t.method, t.weight) for t in kd] == [("ce", 0.1), ("kd", 0.9), ("nd", 2.0)]  # KD++
    assert kd[1].params == {"tau": 4} and kd[2].params == {"student": "6", "teacher": "features"}
    assert r.data.synthetic.label_noise == 0.15
    assert r.students[1].uses_teacher and not r.students[0].uses_teacher
    assert r.seeds == [0, 1, 2]


def _minimal(**extra):
    d = {"students": [{"name": "s", "arch": "cellsort-cnn"}]}
    d.update(extra)
    return d


def test_unknown_key_names_dotted_path():
    with pytest.raises(ConfigError) as e:
        parse_recipe(_minimal(data={"kind": "synthetic", "sythetic": {}}))
    assert "data.sythetic" in e.value.message and "unknown key" in e.value.message


def test_wrong_type_names_key_expected_and_found():
    with pytest.raises(ConfigError) as e:
        parse_recipe(_minimal(teacher={"train": {"epochs": "many"}}))
    msg = e.value.message
    assert "teacher.train.epochs" in msg and "integer" in msg and "'many'" in msg


def test_nested_list_path():
    d = _minimal()
    d["students"][0]["train"] = {"batch_size": -3}
    with pytest.raises(ConfigError) as e:
        parse_recipe(d)
    assert "students[0].train.batch_size" in e.value.message


def test_missing_data_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        parse_recipe(_minimal(data={"kind": "npz", "path": "nope.npz"}), base_dir=tmp_path)
    assert "data.path" in e.value.message and "nope.npz" in e.value.message


def test_npz_requires_path():
    with pytest.raises(ConfigError) as e:
        parse_recipe(_minimal(data={"kind": "npz"}))
    assert "needs data.path" in e.value.message


def test_relative_paths_resolve_against_recipe_folder(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"x")
    r = parse_recipe(_minimal(data={"kind": "npz", "path": "d.npz"}), base_dir=tmp_path)
    assert r.data.path == (tmp_path / "d.npz").resolve()


def test_malformed_yaml_reports_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nstudents: [\n  {name: a\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(p)
    assert "malformed YAML" in e.value.message and "bad.yaml:" in e.value.message


def test_yaml_tags_are_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo hacked']\nstudents: [{name: a}]\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(p)
    assert "malformed YAML" in e.value.message


def test_unknown_loss_method_lists_valid_ones():
    d = _minimal()
    d["students"][0]["loss"] = [{"ce": 1.0}, {"kdd": {"weight": 0.5}}]
    with pytest.raises(ConfigError) as e:
        parse_recipe(d)
    assert "students[0].loss[1]" in e.value.message and "'kd'" in e.value.message


def test_unknown_loss_parameter_lists_valid_ones():
    d = _minimal()
    d["students"][0]["loss"] = [{"kd": {"weight": 0.5, "temperature": 4}}]
    with pytest.raises(ConfigError) as e:
        parse_recipe(d)
    assert "temperature" in e.value.message and "tau" in e.value.message


def test_unknown_arch():
    d = _minimal()
    d["students"][0]["arch"] = "resnet9000"
    with pytest.raises(ConfigError) as e:
        parse_recipe(d)
    assert "students[0].arch" in e.value.message and "cellsort-cnn" in e.value.message


def test_loss_term_forms():
    d = _minimal()
    d["students"][0]["loss"] = ["ce", {"kd": 0.5}, {"method": "kd", "weight": 0.2, "params": {"tau": 2}}]
    r = parse_recipe(d)
    assert [(t.method, t.weight, t.params) for t in r.students[0].loss] == [
        ("ce", 1.0, {}), ("kd", 0.5, {}), ("kd", 0.2, {"tau": 2})]


def test_duplicate_student_names():
    d = {"students": [{"name": "a"}, {"name": "a"}]}
    with pytest.raises(ConfigError) as e:
        parse_recipe(d)
    assert "unique" in e.value.message


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(p)
    assert "mapping" in e.value.message


def test_quick_overrides_shrink_the_builtin_recipe_without_touching_it():
    from edgekd.pipeline import apply_quick

    full = load_recipe(builtin_recipe_path())
    q = apply_quick(full)
    assert q.seeds == [0] and q.data.synthetic.n_train == 1000 and q.data.synthetic.n_test == 600
    assert q.teacher.train.epochs == 3 and all(s.train.epochs <= 4 for s in q.students)
    assert (q.profile.runs, q.profile.large_batch_runs, q.export.hls.n_check) == (200, 3, 200)
    # the full recipe is unchanged: 3 seeds, 1,000 timed calls, 10 large-batch calls
    assert full.seeds == [0, 1, 2] and full.data.synthetic.n_train == 4000
    assert (full.profile.runs, full.profile.large_batch_runs, full.export.hls.n_check) == (1000, 10, 1000)
    with pytest.raises(ConfigError, match="quick.large_batch_runs"):
        parse_recipe({"students": [{"name": "s", "arch": "mlp"}], "quick": {"large_batch_runs": 1}})
