import { useEffect, useRef } from "react";
import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  DoughnutController,
  Legend,
  LinearScale,
  Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, DoughnutController, ArcElement, Legend, Tooltip);
Chart.defaults.font.family = "system-ui, sans-serif";
Chart.defaults.animation = false; // figures, not motion: every refresh draws at once

/** One Chart.js chart on a canvas, redrawn when its configuration changes. */
export function ChartBox({ title, config, testid }: { title: string; config: ChartConfiguration; testid: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, { ...config, options: { maintainAspectRatio: false, ...config.options } });
    return () => chart.destroy();
  }, [config]);
  return (
    <figure className="chart" data-testid={testid}>
      <figcaption>{title}</figcaption>
      <div className="canvas">
        <canvas ref={canvas} />
      </div>
    </figure>
  );
}
