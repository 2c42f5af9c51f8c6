"""docs/configuration.md is generated from the Settings field descriptions: it fails here when they drift."""

from __future__ import annotations

from shared.config import doc as settings_doc
from shared.config.settings import Settings


def test_configuration_doc_is_generated_from_the_settings() -> None:
    assert settings_doc.DOC.read_text() == settings_doc.render(), (
        "docs/configuration.md is out of date: run .venv/bin/python -m shared.config.doc"
    )


def test_every_setting_has_a_description_and_a_reader() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert name in settings_doc.READ_BY, f"Settings.{name} is missing from settings_doc.READ_BY"
    assert set(settings_doc.READ_BY) == set(Settings.model_fields)
