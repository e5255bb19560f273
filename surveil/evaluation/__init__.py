"""Evaluation of detectors: COCO mAP and per-class P/R/F1, prediction, the surveillance test bed."""

from surveil.evaluation.metrics import ClassMetrics, EvalReport, Prediction, Target, evaluate

__all__ = ["ClassMetrics", "EvalReport", "Prediction", "Target", "evaluate"]
