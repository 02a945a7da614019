import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from 'chart.js';
import { formatCents, formatDay } from './format.ts';
import type { DailyRevenue } from './operations.ts';

// Only the pieces a bar chart needs: the tree-shaken bundle stays a fraction of chart.js/auto.
Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);

export interface RevenueChart {
  update(days: DailyRevenue[]): void;
  destroy(): void;
}

/** Revenue per UTC day as bars; tooltips give the money and the number of orders. */
export function createRevenueChart(canvas: HTMLCanvasElement): RevenueChart {
  let days: DailyRevenue[] = [];
  const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#2563eb';
  const chart = new Chart<'bar', number[], string>(canvas, {
    type: 'bar',
    data: {
      labels: [],
      datasets: [{ label: 'Revenue', data: [], backgroundColor: accent, borderRadius: 4 }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      // Pushed at most every 250 ms: bars that kept re-animating would never be still to read.
      animation: false,
      scales: {
        x: { grid: { display: false } },
        y: { beginAtZero: true, ticks: { callback: (value) => formatCents(Number(value) * 100) } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (item) => {
              const day = days[item.dataIndex];
              return day ? `${formatCents(day.revenueCents)} · ${day.orders} orders` : '';
            },
          },
        },
      },
    },
  });
  return {
    update(next) {
      days = [...next].sort((a, b) => a.day.localeCompare(b.day));
      chart.data.labels = days.map((d) => formatDay(d.day));
      chart.data.datasets[0]!.data = days.map((d) => d.revenueCents / 100);
      chart.update();
    },
    destroy: () => chart.destroy(),
  };
}
