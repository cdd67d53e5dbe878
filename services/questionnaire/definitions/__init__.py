"""FHIR R4 Questionnaire definitions served by the questionnaire service (one ``*.json`` file each).

A package (rather than a bare folder) so that the JSON files ship with the installed distribution
(pyproject's package-data takes ``*.json`` from packages only).
"""
