import nodemailer from 'nodemailer';
import type { Logger } from '../../../lib/logger.ts';

export interface Email {
  to: string;
  subject: string;
  text: string;
}

/** Where notifications go out: SMTP in real use; the place a test puts a failing fake. */
export interface Mailer {
  send(email: Email): Promise<void>;
  close(): void;
}

/** SMTP through nodemailer (pooled connections). */
export function createSmtpMailer({ url, from }: { url: string; from: string }): Mailer {
  const transport = nodemailer.createTransport(url, { from });
  return {
    async send(email) {
      await transport.sendMail({ from, ...email });
    },
    close: () => transport.close(),
  };
}

/** Without SMTP_URL: the email is logged and counts as sent, so the whole flow still runs. */
export function createLogMailer(logger: Logger): Mailer {
  return {
    send(email) {
      logger.info({ to: email.to, subject: email.subject }, 'email recorded as sent (no SMTP_URL)');
      return Promise.resolve();
    },
    close() {},
  };
}
