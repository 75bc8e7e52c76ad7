"""Forty real Food–Kitchen items with hand-written intent paths, as an LLM might write them.

``fk`` is the item's global id in the LLMCDSR Food–Kitchen split, so the same paths can be
used against the real dataset; tests build a 40-item dataset of their own with ids 0..39.
The paths are deliberately a little messy (case, punctuation, singular/plural, synonyms such
as "kitchen tools"/"kitchen utensils") because real LLM output is.
"""

from __future__ import annotations

import csv
from pathlib import Path

from airrec.data import Dataset, read_tables
from airrec.kb.intents import write_intents

# (fk id, domain, title, paths)
ITEMS: list[tuple[int, str, str, list[list[str]]]] = [
    (48, "Food", "Lavazza Crema e Gusto Ground Coffee, Italian , 8.8-Ounce Bricks (Pack of 4)",
     [["beverages", "coffee", "ground coffee"], ["beverages", "coffee", "italian espresso roast"]]),
    (162, "Food", "HealthWise 100% Colombian Supremo, Low Acid Ground Coffee, 12-Ounce Cans (Pack of 3)",
     [["Beverages", "Coffee", "ground coffee"], ["health food", "low acid", "low acid coffee"]]),
    (165, "Food", "Yuban Traditional Ground Coffee, 12-Ounce Cans (Pack of 12)",
     [["beverages", "coffee", "ground coffees"]]),
    (176, "Food", "Coffee Kahlua Hazelnut Gourmet Ground Coffee, 12-Ounce Bags (Pack of 2)",
     [["beverages", "coffee", "flavored coffee"], ["beverages", "coffee.", "ground coffee"]]),
    (339, "Food", "Coffee Bean Direct Italian Roast Espresso, Whole Bean Coffee, 5-Pound Bag",
     [["beverages", "coffee", "whole bean coffee"], ["beverages", "coffee", "espresso beans"]]),
    (134, "Food", "Starbucks House Blend Medium Roast K-Cup Packs for Keurig Brewers, 54-Count",
     [["beverages", "coffee", "coffee pods"], ["kitchen", "coffee makers", "k-cup pods"]]),
    (46, "Food", "Dilmah Premium 100% Pure Ceylon Tea, 100-Count Tea Bags (Pack of 3)",
     [["beverages", "tea", "black tea bags"]]),
    (49, "Food", "Twinings English Afternoon Tea, Tea Bags, 20-Count, 1.41 oz. Boxes (Pack of 6)",
     [["beverages", "tea", "black tea bags"], ["beverages", "tea", "english breakfast tea"]]),
    (50, "Food", "Celestial Seasonings Sleepytime Extra Tea, 20-Count Tea Bags (Pack of 6)",
     [["beverages", "tea", "herbal tea"], ["wellness", "sleep aids", "bedtime tea"]]),
    (273, "Food", "Lipton Green Tea 100% Natural 100 Tea Bags Net Wt 7.0oz",
     [["beverages", "tea", "green tea"]]),
    (97, "Food", "Lipton K-Cup Packs, Soothe Green Tea, 24 Count",
     [["beverages", "tea", "green tea"], ["beverages", "tea", "tea pods"]]),
    (81, "Food", "Hershey's Kisses, Milk Chocolate, 19.75-Ounce Bags (Pack of 3)",
     [["snacks", "candy", "milk chocolate"], ["snacks", "sweets", "chocolate candy"]]),
    (89, "Food", "Ferrero Nutella Spread, Chocolate Hazelnut, 2-Count 26.5-Ounce",
     [["pantry", "spreads", "chocolate hazelnut spread"]]),
    (123, "Food", "Keebler Simply Made Cookies, Chocolate Chip, 10 Ounce",
     [["snacks", "cookies", "chocolate chip cookies"]]),
    (449, "Food", "Kettle Chips, New York Cheddar, 5-Ounce Bags (Pack of 15)",
     [["snacks", "chips", "kettle chips"], ["snacks", "salty snacks", "potato chips"]]),
    (263, "Food", "Gringo Bandito Hot Sauce, 5 Ounce Bottle (Pack of 4)",
     [["pantry", "condiments", "hot sauce"]]),
    (2076, "Food", "Dave's Original Insanity Hot Sauce - 5oz",
     [["pantry", "condiments", "hot sauces"], ["pantry", "condiments", "extra hot sauce"]]),
    (125, "Food", "Arriba! Fire Roasted Mexican Medium Chipotle Salsa, 16 Ounce Jars (Pack of 4)",
     [["pantry", "condiments", "salsa"], ["pantry", "mexican food", "chipotle salsa"]]),
    (218, "Food", "Barilla Mezze Penne Pasta, 16 Ounce Boxes (Pack of 4)",
     [["pantry", "pasta", "penne pasta"]]),
    (264, "Food", "Barilla Spaghetti Pasta, 32 Ounce Boxes (Pack of 6)",
     [["pantry", "pasta", "spaghetti"], ["pantry", "pasta & noodles", "dried pasta"]]),
    (398, "Food", "Zoe Organic Extra Virgin Olive Oil, 25.5- Ounce tins (Pack of 2)",
     [["pantry", "cooking oils", "olive oil"], ["organic food", "organic pantry", "olive oil"]]),
    (877, "Food", "Bob's Red Mill All-Purpose Gluten-Free Baking Flour, 22-Ounce Packages (Pack of 4)",
     [["pantry", "baking supplies", "gluten free flour"]]),
    (1435, "Food", "Ghirardelli Chocolate Baking Chips, 60% Cacao Bittersweet Chocolate, 10-Ounce Bags (Pack of 6)",
     [["pantry", "baking supplies", "chocolate chips"], ["snacks", "candy", "dark chocolate"]]),
    (8728, "Kitchen", "Bodum Brazil 1-1/2-Liter French Press Coffee Maker, 12-Cup, Black",
     [["kitchen", "coffee makers", "french press"], ["beverages", "coffee", "coffee brewing"]]),
    (9744, "Kitchen", "Bodum Chambord 34-Ounce 8-Cup French Press Coffee Maker with Insulating Coffee Coat",
     [["kitchen", "coffee makers", "french presses"]]),
    (9670, "Kitchen", "Bodum Bistro Electric Blade Coffee Grinder, Black",
     [["kitchen", "coffee makers", "coffee grinder"], ["kitchen", "small appliances", "grinders"]]),
    (9264, "Kitchen", "Hamilton Beach 40898 Cool-Touch 8-Cup Cordless Electric Kettle",
     [["kitchen", "small appliances", "electric kettle"], ["kitchen", "tea accessories", "kettles"]]),
    (9743, "Kitchen", "Fresco Stainless Steel Tea Infuser",
     [["kitchen", "tea accessories", "tea infuser"], ["beverages", "tea", "loose leaf tea"]]),
    (8944, "Kitchen", "Contigo AUTOSEAL Travel Mug - Stainless Steel Vacuum Insulated Tumbler - 2 Pack",
     [["kitchen", "drinkware", "travel mugs"]]),
    (9207, "Kitchen", "Contigo Autoseal Randolph Stainless Steel Travel Mug Vacuum Insulated, 16-Ounce",
     [["kitchen", "drinkware", "travel mug"], ["kitchen", "drinkware", "coffee mugs"]]),
    (8688, "Kitchen", "KitchenAid Silicone Mixer Spatula, Black",
     [["kitchen", "kitchen tools", "spatulas"], ["kitchen", "baking tools", "silicone spatula"]]),
    (8779, "Kitchen", "Wilton 9 Inch Angled Spatula, With Black Handle",
     [["kitchen", "kitchen utensils", "spatula"], ["kitchen", "baking tools", "icing spatula"]]),
    (8967, "Kitchen", "OXO Good Grips Silicone Cookie Spatula",
     [["Kitchen", "Kitchen Tools", "spatulas"]]),
    (8888, "Kitchen", "J.A. HENCKELS INTERNATIONAL Kitchen Elements 3-pc Paring Knife Set, Black",
     [["kitchen", "cutlery", "paring knives"], ["kitchen", "cutlery", "knife sets"]]),
    (8987, "Kitchen", "Victorinox 47513 6-Inch Flex Boning Knife with Fibrox Handle",
     [["kitchen", "cutlery", "boning knife"]]),
    (8678, "Kitchen", "Pyrex 11-Inch by 14-Inch Glass Cutting Board",
     [["kitchen", "kitchen tools", "cutting boards"]]),
    (9308, "Kitchen", "Core Bamboo Classic Cutting Board Combo Pack, Natural, Small/Medium/Large",
     [["kitchen", "kitchen utensils", "cutting board"], ["home", "eco friendly", "bamboo kitchenware"]]),
    (11335, "Kitchen", "Lodge Original Finish 12-Inch Cast Iron Skillet",
     [["kitchen", "cookware", "cast iron skillet"], ["kitchen", "cookware", "frying pans"]]),
    (8761, "Kitchen", "Anolon Advanced Hard Anodized Nonstick 12-Inch Covered Ultimate Pan",
     [["kitchen", "cookware", "nonstick pans"], ["kitchen", "cook ware", "frying pan"]]),
    (8777, "Kitchen", "Wilton 6-Piece Mixing Bowl Set",
     [["kitchen", "baking tools", "mixing bowls"]]),
    (8817, "Kitchen", "RSVP 6-Piece Stainless Steel Nesting Measuring Cup Set",
     [["kitchen", "baking tools", "measuring cups"]]),
    (9709, "Kitchen", "OXO Good Grips Lua Pepper Mill",
     [["kitchen", "kitchen utensils", "pepper mill"], ["pantry", "spices", "peppercorns"]]),
]


def write_dataset(root: Path) -> Dataset:
    """The 42 items above as a table-format dataset (ids 0..41, in list order).

    Interactions are a few plausible sessions (coffee lovers, bakers, cooks) so the dataset
    has train/valid/test lines; the knowledge base only uses the item table.
    """
    root.mkdir(parents=True, exist_ok=True)
    with (root / "items.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item", "domain", "text"])
        for k, (_, domain, title, _) in enumerate(ITEMS):
            w.writerow([k, domain, title])
    sessions = [[0, 1, 23, 2, 24, 3], [6, 7, 27, 8, 9, 10], [30, 31, 39, 40, 21, 22],
                [33, 34, 37, 38, 20, 18], [11, 12, 13, 14, 15, 16]]
    with (root / "interactions.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "domain", "timestamp"])
        for user, items in enumerate(sessions):
            for t, item in enumerate(items):
                w.writerow([user, item, ITEMS[item][1], t])
    return read_tables(root / "interactions.csv", root / "items.csv", name="fk40",
                       domains=["Food", "Kitchen"])


def write_fk40_intents(path: Path, *, global_ids: bool = False) -> Path:
    """The intents of :data:`ITEMS` (ids 0..41, or Food–Kitchen ids with ``global_ids``)."""
    return write_intents(
        path,
        ((fk if global_ids else k, 0, paths) for k, (fk, _, _, paths) in enumerate(ITEMS)),
    )
