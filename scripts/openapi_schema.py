"""Write `.cog/openapi_schema.json` from predict.py, as the Go `cog build` does.

The Cog HTTP server validates inputs (422 on a missing or mistyped field) only
when this file exists. A Cog image gets it from `cog build`; running the server
without Docker (tests, local use) needs this script. Usage:

    python scripts/openapi_schema.py [--predictor predict.py:Predictor] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def input_schema(info) -> dict:
    """JSON schema of the predictor's inputs, in `cog build`'s shape."""
    from cog._adt import Repetition

    properties, required = {}, []
    for name, field in sorted(info.inputs.items(), key=lambda kv: kv[1].order):
        prop = field.type.json_type()
        prop["title"] = name.replace("_", " ").title()
        prop["x-order"] = field.order
        if field.description:
            prop["description"] = field.description
        if field.default is not None:
            prop["default"] = field.default
        if field.ge is not None:
            prop["minimum"] = field.ge
        if field.le is not None:
            prop["maximum"] = field.le
        if field.choices:
            prop["enum"] = list(field.choices)
        if field.type.repetition in (Repetition.OPTIONAL, Repetition.OPTIONAL_REPEATED):
            prop["nullable"] = True
        elif field.default is None:
            required.append(name)
        properties[name] = prop
    schema = {"title": "Input", "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def openapi(predictor: str) -> dict:
    """The OpenAPI document for `module.py:Class`."""
    from cog._inspector import create_predictor

    module, _, name = predictor.partition(":")
    sys.path.insert(0, str(ROOT))
    info = create_predictor(module.removesuffix(".py").replace("/", "."), name)
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {
            "/predictions": {
                "post": {
                    "summary": "Predict",
                    "operationId": "predict_predictions_post",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PredictionRequest"}
                            }
                        }
                    },
                    "responses": {
                        "200": {
                            "description": "Successful Response",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/PredictionResponse"}
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "Input": input_schema(info),
                "Output": info.output.json_type(),
                "PredictionRequest": {
                    "title": "PredictionRequest",
                    "type": "object",
                    "properties": {"input": {"$ref": "#/components/schemas/Input"}},
                },
                "PredictionResponse": {
                    "title": "PredictionResponse",
                    "type": "object",
                    "properties": {
                        "input": {"$ref": "#/components/schemas/Input"},
                        "output": {"$ref": "#/components/schemas/Output"},
                    },
                },
            }
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default="predict.py:Predictor")
    parser.add_argument("--out", type=Path, default=ROOT / ".cog" / "openapi_schema.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(openapi(args.predictor), indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
