"""Binance USD-M error codes we produce (sim) and handle (client), with their documented messages."""

from __future__ import annotations

UNKNOWN = -1000
DISCONNECTED = -1001
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESP = -1006
TIMEOUT = -1007
TOO_MANY_ORDERS = -1015
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM_EMPTY_OR_MALFORMED = -1102
UNKNOWN_PARAM = -1103
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
BAD_SYMBOL = -1121
INVALID_LISTEN_KEY = -1125
INVALID_PARAMETER = -1130
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015
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
}
