"""A lender's cost of a car-loan decision, as a user metric (`metrics: {cost: loan_costs:expected_loss}`).

Approving an applicant who does not repay loses about five times what turning away one who would have repaid does
(the car's lost value against a lost margin), so the cost-minimising rule approves only above P(repaid) = 5/6.
"""
from __future__ import annotations

import numpy as np

MISSED_DEFAULT, LOST_CUSTOMER = 5.0, 1.0


def expected_loss(y_true, y_pred) -> float:
    """Mean cost per application: MISSED_DEFAULT for an approved defaulter, LOST_CUSTOMER for a refused payer."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    wrong_yes, wrong_no = (y_pred == 1) & (y_true == 0), (y_pred == 0) & (y_true == 1)
    return float(np.mean(MISSED_DEFAULT * wrong_yes + LOST_CUSTOMER * wrong_no))
