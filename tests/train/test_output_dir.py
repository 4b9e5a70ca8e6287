import pytest

from glm.core.config import config_from_dict
from glm.core.train.outdir import OutputDirError, check_output_dir


def _training(out, **training):
    return config_from_dict({"training": {"output_dir": str(out), **training}}).training


def test_non_empty_output_dir_is_refused_before_anything_loads(tmp_path):
    out = tmp_path / "run"
    check_output_dir(_training(out))          # missing: fine
    out.mkdir()
    check_output_dir(_training(out))          # empty: fine
    (out / "trainer_log.jsonl").write_text("{}\n")
    with pytest.raises(OutputDirError, match="not empty.*overwrite_output_dir=true.*resume=latest"):
        check_output_dir(_training(out))
    check_output_dir(_training(out, overwrite_output_dir=True))
    check_output_dir(_training(out, resume="latest"))
