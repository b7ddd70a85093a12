"""Python client of the crypto price pipeline's price API.

    from price_client import PriceClient
    client = PriceClient("https://<id>.lambda-url.eu-west-1.on.aws/")
    client.latest(["BTC-USD", "ETH-USD"])["BTC-USD"].price   # Decimal
"""

from price_client.client import PriceClient, __version__
from price_client.errors import PriceApiError
from price_client.models import Candle, Tick
from price_client.times import from_epoch_ms, to_epoch_ms

__all__ = ["Candle", "PriceApiError", "PriceClient", "Tick", "__version__", "from_epoch_ms", "to_epoch_ms"]
