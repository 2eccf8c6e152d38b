/// <reference lib="dom" />
/** Browser entry of the dashboard UI; bundled by src/dashboard/bundle.ts. */
import { createRoot } from "react-dom/client";
import { App } from "./App.tsx";
import "./styles.css";

const root = document.getElementById("root");
if (root) createRoot(root).render(<App />);
