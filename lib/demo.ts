/**
 * The demo data seeded outside production into empty databases, in one place because it spans
 * services: the admin's orders (orders) point at products (products) and have payments
 * (payments). Fixed ids keep the seeds of separate services consistent without calling each
 * other at start.
 */
export const DEMO_ADMIN_ID = '00000000-0000-4000-8000-000000000001';

export const DEMO_PRODUCTS = [
  {
    id: '00000000-0000-4000-8000-000000000101',
    sku: 'KB-001',
    name: 'Mechanical Keyboard',
    description: 'Tenkeyless, hot-swappable switches',
    priceCents: 8_999,
    stock: 25,
  },
  {
    id: '00000000-0000-4000-8000-000000000102',
    sku: 'MS-001',
    name: 'Wireless Mouse',
    description: 'Ergonomic, 3 buttons',
    priceCents: 2_999,
    stock: 50,
  },
  {
    id: '00000000-0000-4000-8000-000000000103',
    sku: 'MN-27',
    name: '27" Monitor',
    description: '1440p, 144 Hz',
    priceCents: 32_900,
    stock: 10,
  },
  {
    id: '00000000-0000-4000-8000-000000000104',
    sku: 'CB-USBC',
    name: 'USB-C Cable',
    description: null,
    priceCents: 999,
    stock: 200,
  },
] as const;

const [keyboard, mouse, , cable] = DEMO_PRODUCTS;

export const DEMO_ORDERS = [
  {
    id: '00000000-0000-4000-8000-000000000201',
    userId: DEMO_ADMIN_ID,
    items: [
      { productId: keyboard.id, quantity: 1, unitPriceCents: keyboard.priceCents },
      { productId: cable.id, quantity: 2, unitPriceCents: cable.priceCents },
    ],
    paymentId: '00000000-0000-4000-8000-000000000301',
  },
  {
    id: '00000000-0000-4000-8000-000000000202',
    userId: DEMO_ADMIN_ID,
    items: [{ productId: mouse.id, quantity: 1, unitPriceCents: mouse.priceCents }],
    paymentId: '00000000-0000-4000-8000-000000000302',
  },
] as const;

export function orderTotalCents(items: readonly { quantity: number; unitPriceCents: number }[]): number {
  return items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
}
