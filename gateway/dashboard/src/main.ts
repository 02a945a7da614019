import './styles.css';
import { createLiveConnection, type ConnectionStatus } from './createLiveConnection.ts';
import { createRevenueChart } from './createRevenueChart.ts';
import { formatCents, formatCount, formatDateTime, formatDay, formatRate, formatTime } from './format.ts';
import {
  LOG_IN,
  ORDER_STATUS_CHANGED,
  SALES_METRICS,
  SALES_METRICS_UPDATED,
  type OrderChange,
  type SalesMetrics,
} from './operations.ts';
import { GraphQLRequestError, postGraphQL } from './postGraphQL.ts';

// The token lives only as long as the tab: closing it signs out, a reload does not.
const TOKEN_KEY = 'event-federation.dashboard.token';
const FEED_LENGTH = 20;

function element<T extends HTMLElement = HTMLElement>(selector: string): T {
  const found = document.querySelector<T>(selector);
  if (!found) throw new Error(`dashboard markup lacks ${selector}`);
  return found;
}
const byTestId = <T extends HTMLElement = HTMLElement>(id: string) => element<T>(`[data-testid="${id}"]`);

const view = {
  signIn: element('#sign-in'),
  form: element<HTMLFormElement>('#sign-in-form'),
  signInError: byTestId('sign-in-error'),
  dashboard: element('#dashboard'),
  dashboardError: byTestId('dashboard-error'),
  signOut: element<HTMLButtonElement>('#sign-out'),
  connection: element('.connection'),
  status: byTestId('connection-status'),
};

const STATUS_TEXT: Record<ConnectionStatus, string> = {
  connecting: 'connecting',
  live: 'live',
  reconnecting: 'reconnecting',
  offline: 'offline',
};

function showStatus(status: ConnectionStatus) {
  view.status.textContent = STATUS_TEXT[status];
  view.connection.dataset['state'] = status;
}

/** The signed-in dashboard: one graphql-ws connection, figures, chart, top products and feed. */
function startDashboard(token: string, signOut: (message?: string) => void): () => void {
  view.signIn.hidden = true;
  view.dashboard.hidden = false;
  view.signOut.hidden = false;
  view.dashboardError.textContent = '';
  const chart = createRevenueChart(element<HTMLCanvasElement>('#revenue-chart'));
  let shownAt = '';

  function showMetrics(metrics: SalesMetrics) {
    // A query answered after a newer push must not roll the figures back.
    if (metrics.updatedAt < shownAt) return;
    shownAt = metrics.updatedAt;
    byTestId('total-orders').textContent = formatCount(metrics.totalOrders);
    byTestId('order-breakdown').textContent =
      `${formatCount(metrics.confirmedOrders)} confirmed · ${formatCount(metrics.cancelledOrders)} cancelled`;
    byTestId('revenue').textContent = formatCents(metrics.revenueCents);
    byTestId('success-rate').textContent = formatRate(metrics.successRate);
    byTestId('average-order-value').textContent = formatCents(metrics.averageOrderValueCents);
    const updated = byTestId<HTMLTimeElement>('updated-at');
    updated.dateTime = metrics.updatedAt;
    updated.textContent = formatDateTime(metrics.updatedAt);
    chart.update(metrics.revenueByDay);
    byTestId('revenue-by-day')
      .querySelector('tbody')!
      .replaceChildren(
        ...metrics.revenueByDay.map((d) =>
          row([formatDay(d.day), formatCents(d.revenueCents), formatCount(d.orders)]),
        ),
      );
    fillList(
      'top-products',
      metrics.topProducts.map((p) => {
        const item = document.createElement('li');
        item.append(
          span('top-products__name', p.product.name),
          span('top-products__units', `${formatCount(p.unitsSold)} sold`),
          span('top-products__revenue', formatCents(p.revenueCents)),
        );
        return item;
      }),
    );
  }

  const feed: OrderChange[] = [];
  function showOrderChange(change: OrderChange) {
    if (feed.some((c) => c.id === change.id && c.status === change.status)) return;
    feed.unshift(change);
    feed.splice(FEED_LENGTH);
    fillList(
      'order-feed',
      feed.map((c) => {
        const item = document.createElement('li');
        const badge = span(`badge badge--${c.status.toLowerCase()}`, c.status.toLowerCase());
        const when = document.createElement('time');
        when.dateTime = c.updatedAt;
        when.textContent = formatTime(c.updatedAt);
        item.append(
          badge,
          span('feed__order', `Order ${c.id.slice(0, 8)}`),
          span('feed__total', formatCents(c.totalCents)),
          span('feed__who', c.user?.email ?? ''),
          when,
        );
        if (c.failureReason) item.append(span('feed__reason', c.failureReason));
        return item;
      }),
    );
  }

  async function refreshMetrics() {
    try {
      const { salesMetrics } = await postGraphQL<{ salesMetrics: SalesMetrics }>(SALES_METRICS, {}, token);
      showMetrics(salesMetrics);
      view.dashboardError.textContent = '';
    } catch (error) {
      if (error instanceof GraphQLRequestError && isRejection(error.code)) {
        signOut('Your session has ended or lacks the ADMIN role: please sign in again.');
        return;
      }
      view.dashboardError.textContent = `Could not load the figures: ${(error as Error).message}`;
    }
  }

  const connection = createLiveConnection({
    token,
    onStatus: showStatus,
    onConnected: () => void refreshMetrics(),
    onRejected: (reason) =>
      signOut(`The gateway closed the live connection: ${reason}. Please sign in again.`),
    onSubscriptionError: (message) => {
      view.dashboardError.textContent = `Live updates failed: ${message}`;
    },
  });
  connection.subscribe<{ salesMetricsUpdated: SalesMetrics }>(SALES_METRICS_UPDATED, (data) =>
    showMetrics(data.salesMetricsUpdated),
  );
  connection.subscribe<{ orderStatusChanged: OrderChange }>(ORDER_STATUS_CHANGED, (data) =>
    showOrderChange(data.orderStatusChanged),
  );

  return () => {
    connection.dispose();
    chart.destroy();
  };
}

function isRejection(code: string | undefined) {
  return code === 'UNAUTHENTICATED' || code === 'FORBIDDEN';
}

function span(className: string, text: string) {
  const node = document.createElement('span');
  node.className = className;
  node.textContent = text;
  return node;
}

function row(cells: string[]) {
  const tr = document.createElement('tr');
  tr.append(
    ...cells.map((text) => {
      const td = document.createElement('td');
      td.textContent = text;
      return td;
    }),
  );
  return tr;
}

function fillList(testId: string, items: HTMLElement[]) {
  byTestId(testId).replaceChildren(...items);
  element(`[data-empty-for="${testId}"]`).hidden = items.length > 0;
}

function main() {
  let stop: (() => void) | undefined;

  function signOut(message = '') {
    stop?.();
    stop = undefined;
    sessionStorage.removeItem(TOKEN_KEY);
    view.dashboard.hidden = true;
    view.signOut.hidden = true;
    view.signIn.hidden = false;
    view.signInError.textContent = message;
    showStatus('offline');
    element<HTMLInputElement>('#email').focus();
  }

  function open(token: string) {
    sessionStorage.setItem(TOKEN_KEY, token);
    stop = startDashboard(token, signOut);
  }

  view.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const email = element<HTMLInputElement>('#email').value.trim();
    const password = element<HTMLInputElement>('#password').value;
    if (!email || !password) {
      view.signInError.textContent = 'Enter your email and password.';
      return;
    }
    const button = view.form.querySelector('button')!;
    button.disabled = true;
    view.signInError.textContent = '';
    postGraphQL<{ logIn: { token: string; user: { email: string; role: string } } }>(LOG_IN, {
      email,
      password,
    })
      .then(({ logIn }) => {
        if (logIn.user.role !== 'ADMIN') {
          view.signInError.textContent = `${logIn.user.email} is not an administrator: the dashboard needs the ADMIN role.`;
          return;
        }
        view.form.reset();
        open(logIn.token);
      })
      .catch((error: unknown) => {
        view.signInError.textContent =
          error instanceof GraphQLRequestError && error.code === 'UNAUTHENTICATED'
            ? 'Wrong email or password.'
            : error instanceof GraphQLRequestError && error.code === 'RATE_LIMITED'
              ? 'Too many attempts: wait a moment and try again.'
              : `Sign-in failed: ${(error as Error).message}`;
      })
      .finally(() => {
        button.disabled = false;
      });
  });
  view.signOut.addEventListener('click', () => signOut());

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) open(saved);
  else showStatus('offline');
}

main();
