"""Recipe schema and loading."""
from edgekd.config.load import builtin_recipe_path, load_recipe, parse_recipe
from edgekd.config.schema import (
    DataConfig,
    HlsExportConfig,
    LossTermConfig,
    ProfileConfig,
    Recipe,
    StudentConfig,
    TeacherConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig", "HlsExportConfig", "LossTermConfig", "ProfileConfig", "Recipe",
    "StudentConfig", "TeacherConfig", "TrainConfig", "builtin_recipe_path", "load_recipe",
    "parse_recipe",
]
