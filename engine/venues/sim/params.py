"""Binance order parameters (REST form strings or WebSocket API JSON values) -> typed arguments for the core.

Validation follows Binance's answers: missing mandatory parameter -1102, unknown symbol -1121, bad side -1117,
bad type -1116, bad timeInForce -1115, too many decimals -1111, price off the tick -4014, quantity off the step
-4023, bad client order id -1100. A value of the wrong type or form (a WebSocket API list where a string goes,
non-ASCII digits, a decimal with more than 20 digits before or after its point, an integer over 20
digits) is a -1102/-1100 like any other malformed parameter: always a 400, never an internal error.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.model import Instrument, OrderType, TimeInForce
from engine.venues.binance import codes
from engine.venues.sim.auth import SimHttpError

_DEC = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")
_INT = re.compile(r"-?[0-9]{1,20}")
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
SUPPORTED_TYPES = {t.value: t for t in OrderType}
ALL_BINANCE_TYPES = {"LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                     "TRAILING_STOP_MARKET"}


def bad(code: int, msg: str) -> SimHttpError:
    return SimHttpError(400, code, msg)


def mandatory(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                  codes.MESSAGES[codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED].format(param=name))
    return value


def as_bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise bad(codes.INVALID_PARAMETER, f"Invalid value for parameter '{name}'.")


def as_int(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    """An integer parameter: ASCII digits (a JSON integer over the WebSocket API), at most 20 of them."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str) or not _INT.fullmatch(value):
        raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                  f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(value)


def as_text(params: dict[str, Any], name: str) -> str | None:
    """A string parameter, or None when absent; a JSON value of another type is malformed."""
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
              codes.MESSAGES[codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED].format(param=name))


def instrument_of(params: dict[str, Any], instruments: dict[str, Instrument]) -> Instrument:
    symbol = mandatory(params, "symbol")
    inst = instruments.get(symbol) if isinstance(symbol, str) else None
    if inst is None:
        raise bad(codes.BAD_SYMBOL, codes.MESSAGES[codes.BAD_SYMBOL])
    return inst


def price_precision(inst: Instrument) -> int:
    """Decimals a price may carry (exchangeInfo ``pricePrecision``): BTCUSDT quotes 2 on a 0.10 tick."""
    return max(Instrument.grid(inst.tick_size)[1], 2)


def _units(value: Any, size: Decimal, name: str, off_grid_code: int, off_grid_msg: str,
           precision: int | None = None) -> int:
    text = str(value) if type(value) in (str, int, float) else ""
    if not _DEC.fullmatch(text):
        raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, f"Illegal characters found in parameter '{name}'; "
                                                            "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    d = Decimal(text)
    decimals = Instrument.grid(size)[1] if precision is None else precision
    if -d.normalize().as_tuple().exponent > decimals:
        raise bad(codes.BAD_PRECISION, codes.MESSAGES[codes.BAD_PRECISION])
    try:
        units, rem = divmod(d, size)
    except InvalidOperation:
        raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, f"Illegal value for parameter '{name}'.") from None
    if rem != 0:
        raise bad(off_grid_code, off_grid_msg)
    return int(units)


def price_ticks(value: Any, inst: Instrument, name: str = "price") -> int:
    return _units(value, inst.tick_size, name, codes.PRICE_NOT_INCREASED_BY_TICK_SIZE,
                  codes.MESSAGES[codes.PRICE_NOT_INCREASED_BY_TICK_SIZE], price_precision(inst))


def qty_lots(value: Any, inst: Instrument) -> int:
    return _units(value, inst.step_size, "quantity", codes.QTY_NOT_INCREASED_BY_STEP_SIZE,
                  codes.MESSAGES[codes.QTY_NOT_INCREASED_BY_STEP_SIZE])


def parse_order(params: dict[str, Any], instruments: dict[str, Instrument]) -> dict[str, Any]:
    """Binance ``POST /fapi/v1/order`` / ``order.place`` params -> keyword arguments of ``SimExchange.place``."""
    inst = instrument_of(params, instruments)
    side = mandatory(params, "side")
    if not isinstance(side, str) or side not in ("BUY", "SELL"):
        raise bad(codes.INVALID_SIDE, "Invalid side.")
    type_name = mandatory(params, "type")
    if not isinstance(type_name, str):
        raise bad(codes.INVALID_ORDER_TYPE, "Invalid orderType.")
    if type_name not in SUPPORTED_TYPES:
        if type_name in ALL_BINANCE_TYPES:
            raise bad(codes.INVALID_ORDER_TYPE, f"Order type {type_name} is not supported by the sim venue.")
        raise bad(codes.INVALID_ORDER_TYPE, "Invalid orderType.")
    otype = SUPPORTED_TYPES[type_name]
    position_side = params.get("positionSide", "BOTH")
    if position_side != "BOTH":
        raise bad(-4061, "Order's position side does not match user's setting.")
    close_position = as_bool(params, "closePosition")
    reduce_only = as_bool(params, "reduceOnly")
    tif = TimeInForce.GTC
    price = stop = qty = None
    if otype is OrderType.LIMIT:
        tif_name = mandatory(params, "timeInForce")
        try:
            tif = TimeInForce(tif_name) if isinstance(tif_name, str) else TimeInForce("")
        except ValueError:
            raise bad(codes.INVALID_TIF, "Invalid timeInForce.") from None
        price = price_ticks(mandatory(params, "price"), inst)
    elif otype in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
        stop = price_ticks(mandatory(params, "stopPrice"), inst, "stopPrice")
    if not close_position:
        qty = qty_lots(mandatory(params, "quantity"), inst)
    elif params.get("quantity") not in (None, ""):
        raise bad(codes.INVALID_PARAMETER, "Quantity is not allowed with closePosition.")
    cid = params.get("newClientOrderId")
    if cid is not None and not (isinstance(cid, str) and _CLIENT_ID.match(cid)):
        raise bad(codes.ILLEGAL_CHARS, "Illegal characters found in parameter 'newClientOrderId'; "
                                       "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    return {"symbol": inst.symbol, "side": side, "type": otype, "qty_lots": qty, "price_ticks": price, "tif": tif,
            "stop_ticks": stop, "reduce_only": reduce_only, "close_position": close_position,
            "client_order_id": cid}


def order_ref(params: dict[str, Any]) -> tuple[int | None, str | None]:
    """(orderId, origClientOrderId) of a cancel/query; one of them is mandatory."""
    oid = as_int(params, "orderId")
    cid = as_text(params, "origClientOrderId") or None
    if oid is None and cid is None:
        raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                  "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return oid, cid
