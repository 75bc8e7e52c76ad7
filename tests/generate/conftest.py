"""Fixtures for the intent-generation tests: item titles and the SmolLM2 model, if present."""

from __future__ import annotations

import pytest

#: Food–Kitchen-like titles, written here so the tests need no dataset files.
TITLES = [
    "Twinings of London Earl Grey Tea, 20 Count Tea Bags",
    "Cuisinart 12-Piece Stainless Steel Cookware Set",
    "Planters Dry Roasted Peanuts, 16 Ounce Jar",
    "Pyrex Easy Grab 3-Quart Oblong Baking Dish",
    "Starbucks French Roast Whole Bean Coffee, 12 Ounce",
    "OXO Good Grips Salad Spinner",
    "Quaker Old Fashioned Oats, 42 Ounce Canister",
    "Hamilton Beach 2-Slice Toaster, Black",
    "Nature Valley Crunchy Granola Bars, Oats and Honey, 12 Count",
    "Wusthof Classic 8-Inch Chef's Knife",
    "Barilla Spaghetti Pasta, 16 Ounce Box (Pack of 8)",
    "Rubbermaid Brilliance Food Storage Containers, 10-Piece Set",
    "Lindt Excellence 70% Cocoa Dark Chocolate Bar",
    "KitchenAid Artisan Stand Mixer, Empire Red",
    "Heinz Tomato Ketchup, 32 Ounce Bottle",
    "Brita Standard Water Filter Pitcher, 10 Cup",
    "Annie's Organic Macaroni and Cheese, 6 Ounce (Pack of 12)",
    "Lodge Enameled Cast Iron Dutch Oven, 6 Quart",
    "Celestial Seasonings Sleepytime Herbal Tea, 40 Count",
    "Zojirushi 5.5-Cup Rice Cooker and Warmer",
    "Bertolli Extra Virgin Olive Oil, 25.5 Ounce",
    "Mainstays 3-Tier Metal Storage Shelf",
    "Jif Creamy Peanut Butter, 40 Ounce",
    "Corelle Livingware 16-Piece Dinnerware Set",
    "Kind Healthy Grains Bars, Peanut Butter Dark Chocolate",
    "Keurig K-Classic Single Serve Coffee Maker",
    "McCormick Ground Cinnamon, 7.12 Ounce",
    "Utopia Bedding Queen Pillows, Set of 2",
    "Swiss Miss Milk Chocolate Hot Cocoa Mix, 50 Packets",
    "Joseph Joseph Nest 9-Piece Nesting Bowl Set",
]


@pytest.fixture(scope="session")
def items() -> list[tuple[int, str]]:
    return [(100 + i, t) for i, t in enumerate(TITLES)]
