# One image for every service: the gateway by default; docker-compose.yml overrides the command
# per service (npm run start:<name>). TypeScript runs directly with tsx; the one build step bundles
# the dashboard, which a production gateway serves as built.
FROM node:20-slim

WORKDIR /app
ENV HOST=0.0.0.0 \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false

# Dependencies first, so a source change does not reinstall them. Dev dependencies are needed:
# tsx runs the services.
COPY package.json package-lock.json ./
RUN npm ci --no-audit && npm cache clean --force

COPY . .
RUN npm run build
# Embedded PGlite and the generated development secrets live in DATA_DIR (.data) when no
# DATABASE_URL or secrets are given; the unprivileged user must be able to write there.
RUN mkdir -p .data && chown node:node .data
USER node

EXPOSE 4000 4001 4002 4003 4004
CMD ["npm", "run", "start:gateway"]
