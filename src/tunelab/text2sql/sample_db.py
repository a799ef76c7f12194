"""A generated SQLite database for tests, the demo and the benchmarks: a small shop with declared foreign keys
(including two parallel keys from `orders` to `employees`), categorical columns, values stored with trailing
spaces, and one wide telemetry table (320 measurement columns + its keys)."""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
from pathlib import Path

CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille", "Bordeaux", "Rennes", "Grenoble"]
TRAILING = {"Lyon", "Nice"}  # stored as 'Lyon ' / 'Nice ': equality with 'Lyon' finds nothing
SEGMENTS = ["consumer", "corporate", "home office"]
REGIONS = ["North", "South", "East", "West"]
CATEGORIES = ["Furniture", "Office Supplies", "Technology", "Garden", "Kitchen"]
STATUSES = ["shipped", "pending", "cancelled", "returned"]
PRODUCT_WORDS = ["Chair", "Desk", "Lamp", "Stapler", "Monitor", "Keyboard", "Kettle", "Shovel", "Blender", "Shelf",
                 "Notebook", "Router", "Toaster", "Hose", "Pan", "Printer", "Cabinet", "Mouse", "Rake", "Mug"]
ADJECTIVES = ["Classic", "Deluxe", "Compact", "Ergonomic", "Smart", "Eco", "Pro", "Mini"]
FIRST = ["Alice", "Bruno", "Chloe", "David", "Emma", "Farid", "Gaelle", "Hugo", "Ines", "Jules", "Karim", "Lea",
         "Malik", "Nina", "Oscar", "Pauline", "Quentin", "Rose", "Samir", "Zoe"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"]

# 10 quantities x 8 places x 4 statistics = 320 measurement columns in the wide table
QUANTITIES = ["temperature", "humidity", "pressure", "voltage", "current", "vibration", "noise", "light",
              "flow", "torque"]
PLACES = ["inlet", "outlet", "core", "shell", "motor", "fan", "pump", "valve"]
STATS = ["avg", "max", "min", "std"]


def wide_column_names(n: int | None = None) -> list[str]:
    names = [f"{q}_{p}_{s}" for q in QUANTITIES for p in PLACES for s in STATS]
    return names if n is None else names[:n]


def make_shop_database(path: str | Path, customers: int = 200, orders: int = 800, seed: int = 0) -> Path:
    """Write the shop database to `path` (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(seed)
    conn = sqlite3.connect(tmp)
    try:
        _fill(conn, rng, customers, orders)
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)
    return path


def _fill(conn: sqlite3.Connection, rng: random.Random, n_customers: int, n_orders: int) -> None:
    conn.executescript("""
        PRAGMA foreign_keys = ON;
        CREATE TABLE regions (region_id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, city TEXT, segment TEXT,
            region_id INTEGER REFERENCES regions(region_id), signup_date TEXT);
        CREATE TABLE employees (employee_id INTEGER PRIMARY KEY, name TEXT, title TEXT,
            region_id INTEGER REFERENCES regions(region_id), manager_id INTEGER REFERENCES employees(employee_id));
        CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
            order_date TEXT, status TEXT, sales_rep_id INTEGER REFERENCES employees(employee_id),
            approved_by INTEGER REFERENCES employees(employee_id));
        CREATE TABLE order_items (order_id INTEGER REFERENCES orders(order_id),
            product_id INTEGER REFERENCES products(product_id), quantity INTEGER, unit_price REAL,
            PRIMARY KEY (order_id, product_id));
    """)
    wide = wide_column_names()
    conn.execute("CREATE TABLE product_telemetry (reading_id INTEGER PRIMARY KEY, "
                 "product_id INTEGER REFERENCES products(product_id), reading_date TEXT, "
                 + ", ".join(f"{c} REAL" for c in wide) + ")")
    conn.executemany("INSERT INTO regions VALUES (?, ?)", list(enumerate(REGIONS, start=1)))
    rows = []
    for i in range(1, n_customers + 1):
        city = rng.choice(CITIES)
        city = city + " " if city in TRAILING else city
        signup = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(4 * 365))
        rows.append((i, f"{rng.choice(FIRST)} {rng.choice(LAST)}", city, rng.choice(SEGMENTS),
                     rng.randrange(1, len(REGIONS) + 1), signup.isoformat()))
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", rows)
    employees = [(1, "Claire Fontaine", "director", 1, None)]
    for i in range(2, 21):
        title = "manager" if i <= 5 else "sales representative"
        manager = 1 if i <= 5 else rng.randrange(2, 6)
        employees.append((i, f"{rng.choice(FIRST)} {rng.choice(LAST)}", title, rng.randrange(1, 5), manager))
    conn.executemany("INSERT INTO employees VALUES (?, ?, ?, ?, ?)", employees)
    products = []
    names = sorted({f"{a} {w}" for a in ADJECTIVES for w in PRODUCT_WORDS})
    rng.shuffle(names)
    for i, name in enumerate(names[:60], start=1):
        stored = name + " " if i % 7 == 0 else name  # some product names carry a trailing space
        products.append((i, stored, rng.choice(CATEGORIES), round(rng.uniform(2, 500), 2)))
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
    orders, items = [], []
    for i in range(1, n_orders + 1):
        date = dt.date(2022, 1, 1) + dt.timedelta(days=rng.randrange(3 * 365))
        rep = rng.randrange(6, 21)
        orders.append((i, rng.randrange(1, n_customers + 1), date.isoformat(), rng.choice(STATUSES), rep,
                       rng.randrange(2, 6)))
        for product in rng.sample(range(1, len(products) + 1), rng.randrange(1, 4)):
            price = products[product - 1][3]
            items.append((i, product, rng.randrange(1, 6), round(price * rng.uniform(0.8, 1.0), 2)))
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", items)
    readings = []
    for i in range(1, 301):
        date = dt.date(2024, 1, 1) + dt.timedelta(days=i % 120)
        readings.append((i, rng.randrange(1, len(products) + 1), date.isoformat(),
                         *[round(rng.gauss(50, 15), 3) for _ in wide]))
    conn.executemany(f"INSERT INTO product_telemetry VALUES ({', '.join('?' * (3 + len(wide)))})", readings)
