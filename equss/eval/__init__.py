"""Evaluation: Hungarian metrics (:mod:`~equss.eval.metrics`), dense CRF
(:mod:`~equss.eval.crf`), entropy and codeword-distance analyses (:mod:`~equss.eval.analysis`,
Eq. 6-9)."""
