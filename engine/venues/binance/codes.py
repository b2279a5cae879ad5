"""Binance USD-M error codes we produce (sim) and handle (client), with their documented messages."""

from __future__ import annotations

UNKNOWN = -1000
DISCONNECTED = -1001
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESP = -1006
TIMEOUT = -1007
SERVER_BUSY = -1008
INVALID_MESSAGE = -1013
TOO_MANY_ORDERS = -1015
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
START_TIME_GREATER_THAN_END_TIME = -1023
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM_EMPTY_OR_MALFORMED = -1102
UNKNOWN_PARAM = -1103
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
BAD_SYMBOL = -1121
INVALID_LISTEN_KEY = -1125
MORE_THAN_XX_HOURS = -1127
OPTIONAL_PARAMS_BAD_COMBO = -1128
INVALID_PARAMETER = -1130
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015
BALANCE_NOT_SUFFICIENT = -2018
MARGIN_NOT_SUFFICIEN = -2019
ORDER_WOULD_IMMEDIATELY_TRIGGER = -2021
REDUCE_ONLY_REJECT = -2022
PRICE_LESS_THAN_ZERO = -4001
QTY_LESS_THAN_ZERO = -4003
QTY_LESS_THAN_MIN_QTY = -4005
PRICE_LESS_THAN_MIN_PRICE = -4013
PRICE_NOT_INCREASED_BY_TICK_SIZE = -4014
INVALID_CL_ORD_ID_LEN = -4015
QTY_NOT_INCREASED_BY_STEP_SIZE = -4023
DUPLICATED_CLIENT_ORDER_ID = -4116  # used by the sim; Binance answers -4116 "ClientOrderId is duplicated"
MIN_NOTIONAL = -4164
GTX_ORDER_REJECT = -5022
ME_INVALID_TIMESTAMP = -5028

MESSAGES = {
    TOO_MANY_REQUESTS: "Too many requests; current limit is {limit} requests per minute.",
    INVALID_TIMESTAMP: "Timestamp for this request is outside of the recvWindow.",
    INVALID_SIGNATURE: "Signature for this request is not valid.",
    MANDATORY_PARAM_EMPTY_OR_MALFORMED: "Mandatory parameter '{param}' was not sent, was empty/null, or malformed.",
    UNKNOWN_PARAM: "An unknown parameter was sent: {param}.",
    BAD_PRECISION: "Precision is over the maximum defined for this asset.",
    BAD_SYMBOL: "Invalid symbol.",
    INVALID_LISTEN_KEY: "This listenKey does not exist.",
    CANCEL_REJECTED: "Unknown order sent.",
    NO_SUCH_ORDER: "Order does not exist.",
    REJECTED_MBX_KEY: "Invalid API-key, IP, or permissions for action.",
    MARGIN_NOT_SUFFICIEN: "Margin is insufficient.",
    REDUCE_ONLY_REJECT: "ReduceOnly Order is rejected.",
    PRICE_NOT_INCREASED_BY_TICK_SIZE: "Price not increased by tick size.",
    PRICE_LESS_THAN_ZERO: "Price less than 0.",
    QTY_LESS_THAN_ZERO: "Quantity less than or equal to zero.",
    ORDER_WOULD_IMMEDIATELY_TRIGGER: "Order would immediately trigger.",
    QTY_NOT_INCREASED_BY_STEP_SIZE: "Quantity not increased by step size.",
    QTY_LESS_THAN_MIN_QTY: "Quantity less than min quantity.",
    MIN_NOTIONAL: "Order's notional must be no smaller than {notional} (unless you choose reduce only).",
    GTX_ORDER_REJECT: "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    DUPLICATED_CLIENT_ORDER_ID: "ClientOrderId is duplicated.",
    START_TIME_GREATER_THAN_END_TIME: "Start time is greater than end time.",
    MORE_THAN_XX_HOURS: "More than {hours} hours between startTime and endTime.",
    OPTIONAL_PARAMS_BAD_COMBO: "Combination of optional parameters invalid.",
    ME_INVALID_TIMESTAMP: "Timestamp for this request is outside of the ME recvWindow.",
}

# Retrying these can succeed: the venue was busy, unreachable or slow (the outcome of the request may be unknown),
# it asked us to slow down, or our clock was off (a resync fixes it).
_TRANSIENT = frozenset({UNKNOWN, DISCONNECTED, UNEXPECTED_RESP, TIMEOUT, SERVER_BUSY, TOO_MANY_REQUESTS,
                        TOO_MANY_ORDERS, INVALID_TIMESTAMP, ME_INVALID_TIMESTAMP})

# Retrying these cannot succeed: the same order would be refused again.
DEFINITIVE = frozenset({
    MARGIN_NOT_SUFFICIEN, BALANCE_NOT_SUFFICIENT,                                   # money
    INVALID_MESSAGE, BAD_PRECISION, QTY_LESS_THAN_ZERO, QTY_LESS_THAN_MIN_QTY,      # filters and precision
    PRICE_LESS_THAN_MIN_PRICE, PRICE_NOT_INCREASED_BY_TICK_SIZE, QTY_NOT_INCREASED_BY_STEP_SIZE, MIN_NOTIONAL,
    PRICE_LESS_THAN_ZERO, INVALID_CL_ORD_ID_LEN,
    MANDATORY_PARAM_EMPTY_OR_MALFORMED, PARAM_NOT_REQUIRED, INVALID_ORDER_TYPE,    # malformed requests
    INVALID_SIDE, BAD_SYMBOL, INVALID_TIF, ILLEGAL_CHARS, UNKNOWN_PARAM, INVALID_PARAMETER,
    REDUCE_ONLY_REJECT, ORDER_WOULD_IMMEDIATELY_TRIGGER, GTX_ORDER_REJECT,          # the order's own terms
    DUPLICATED_CLIENT_ORDER_ID,
    UNAUTHORIZED, INVALID_SIGNATURE, BAD_API_KEY_FMT, REJECTED_MBX_KEY,             # auth
})

# -2010 NEW_ORDER_REJECTED carries its reason in the message; these reasons do not go away by retrying.
_DEFINITIVE_2010 = ("insufficient", "balance", "margin", "would immediately", "would trigger immediately",
                    "reduce", "duplicate", "not enabled", "disabled", "permission", "not allowed", "market is closed",
                    "filter failure", "notional", "precision", "tick size", "step size", "unsupported")


def transient(code: int, status: int = 0, msg: str = "") -> bool:
    """Whether retrying the same request later may succeed (True), or the venue's answer is final (False).

    True (back off and retry inside the window):
      - HTTP 5xx, and -1000 UNKNOWN, -1001 DISCONNECTED, -1006 UNEXPECTED_RESP, -1007 TIMEOUT: the venue failed or
        was unreachable (the outcome of an order may be unknown: query before resending);
      - -1008 SERVER_BUSY / request throttled: the venue is overloaded;
      - HTTP 429 and 418, -1003 TOO_MANY_REQUESTS, -1015 TOO_MANY_ORDERS: rate limits (after ``Retry-After``);
      - -1021 INVALID_TIMESTAMP, -5028 (matching engine recvWindow): our clock estimate was off; after a resync;
      - -2010 NEW_ORDER_REJECTED whose message (``msg``) is not one of the definitive reasons (insufficient
        balance, would trigger/match immediately, reduce-only, duplicate, trading disabled, filters ...).
    False (definitive: end early with the venue's code and message):
      - margin and balance (-2019, -2018); filters and precision (-1013, -1111, -4003, -4005, -4013, -4014, -4023,
        -4164, -4015, -4001); malformed requests (-1102, -1106, -1116, -1117, -1121, -1115, -1100, -1103, -1130);
        reduce-only (-2022); would immediately trigger (-2021); post-only would take (-5022); duplicate client
        order id (-4116); authentication (-2014, -2015, -1022, -1002);
      - any other 4xx answer: unknown codes are treated as definitive (not retried blindly).
    """
    if status in (418, 429) or status >= 500:
        return True
    if code in _TRANSIENT:
        return True
    if code == NEW_ORDER_REJECTED:
        text = msg.lower()
        return not any(reason in text for reason in _DEFINITIVE_2010)
    return False
